"""Numbers from llama-perplexity and llama-bench output (b11549 formats).

Each parser takes a tool's combined stdout and stderr, as `builder.run.run` returns it, and
raises `ParseError` naming what it looked for when the output lacks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..bench import bench_records, test_name
from ..errors import CommandError

NUM = r"(-?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))"
FINAL_PPL_RE = re.compile(r"Final estimate: PPL = " + NUM)
CHUNKS_RE = re.compile(r"(?:calculating perplexity|computing) over (\d+) chunks, n_ctx=(\d+)")
EVAL_RE = re.compile(r"llama_perf_context_print:\s+eval time =\s*" + NUM + r" ms /\s*(\d+) runs.*?" + NUM + r" tokens per second")
MOE_HOT_RE = re.compile(r"llama_moe_hot: \S+: (\d+) layers, (\d+)(?:-(\d+))? of \d+ experts hot per layer")
MOE_ADAPT_RE = re.compile(r"llama_moe_hot: adapt: (\d+) updates, (\d+) swaps, " + NUM + r" MiB copied; hot hit rate " + NUM + r"% over (\d+) tokens")
GRAPHS_REUSED_RE = re.compile(r"graphs reused =\s*(\d+)")
MOE_WORKER_FOLLOW_RE = re.compile(r"llama_moe_hot: adapt: the worker took part in (\d+) of its (\d+) layers at the end, after (\d+) changes")
MOE_WORKER_SHARE_RE = re.compile(r"llama_moe_hot: --moe-cold-cpu-share auto: the worker's share of a layer's cold experts " + NUM + " to "
                                 + NUM + ", " + NUM + r" on average, after (\d+) moves of " + NUM)
MOE_COLD_TOP_RE = re.compile(r"llama_moe_hot: --moe-cold-top (\d+): (\d+) of (\d+) selections \(" + NUM + r"%\) were of cold experts "
                             r"that were not computed; (\d+) cold experts computed \(" + NUM + r" MiB\)")
MOE_CPU_RE = re.compile(r"moe CPU compute =\s*" + NUM + r" ms /\s*(\d+) tokens .*?, " + NUM + r" MiB of cold experts \(" + NUM + r" GB/s\)")
MOE_WORKER_RE = re.compile(r"llama_moe_worker: (\d+) threads computed (\d+) jobs, (\d+) experts \(" + NUM + r" GB\) in " + NUM +
                           r" s: " + NUM + r" GB/s")
MOE_WORKER_PHASES_RE = re.compile(r"llama_moe_worker: a job's phases \(input / gate and up / their product / down\), us: thread 0 worked "
                                  r"([\d. /]+), waited for the others ([\d. /]+)")
MOE_WORKER_PART_RE = re.compile(r"llama_moe_worker: (\d+) of the (\d+) experts in part")
MOE_WORKER_RECV_RE = re.compile(r"llama_moe_worker: the backend waited for the answer of (\d+) of (\d+) jobs \(" + NUM + r"%\): " + NUM +
                                r" us a wait, " + NUM + r" us a job")
PRINT_INFO_RE = re.compile(r"print_info: (arch|n_layer|n_expert|n_expert_used)\s+= (\S+)")
# "Mean PPL(Q)    : 205084.967136 ± 11161.979175" and the like, from the KL divergence summary
STAT_RE = re.compile(r"^\s*(.+?)\s*:\s*" + NUM + r"\s*(?:±\s*" + NUM + r")?\s*%?\s*$")


class ParseError(CommandError):
    """A tool's output lacks the numbers a report needs."""


def _float(text: str) -> float:
    return float(text.replace("-nan", "nan"))


@dataclass(frozen=True)
class PerplexityRun:
    """A plain llama-perplexity run (also the one that saves the logits for KL divergence)."""

    ppl: float
    chunks: int
    n_ctx: int


@dataclass(frozen=True)
class KldRun:
    """A `llama-perplexity --kl-divergence` run against saved base logits."""

    ppl: float
    """Mean PPL(Q): this build's perplexity over the scored tokens."""
    ppl_base: float
    """Mean PPL(base), from the saved (16-bit) log-probabilities."""
    ppl_ratio: float
    """Mean PPL(Q)/PPL(base)."""
    mean_kld: float
    kld_p99: float
    max_kld: float
    same_top: float
    """Share of tokens whose most likely next token is the same in both (0..1)."""
    rms_dp: float
    """RMS of the change in the correct token's probability (0..1)."""
    chunks: int
    n_ctx: int


@dataclass(frozen=True)
class DecodeRun:
    """One-token-per-step decode timings of `llama-perplexity -b 1 -ub 1 --perf`."""

    tokens: int
    """Decode steps timed (the scored second half of each chunk)."""
    ms: float
    tokens_per_second: float


@dataclass(frozen=True)
class BenchRun:
    """One llama-bench test result."""

    test: str
    """"pp512", "tg128", ..."""
    build_commit: str
    tokens_per_second: float
    samples_ts: tuple[float, ...]


def _chunks(text: str, tool: str) -> tuple[int, int]:
    m = CHUNKS_RE.search(text)
    if not m:
        raise ParseError(f"{tool} output has no 'over N chunks, n_ctx=...' line",
                         "the tool stopped before evaluating; its log (above) says why, often a corpus shorter than 2 contexts")
    return int(m.group(1)), int(m.group(2))


def parse_perplexity(text: str) -> PerplexityRun:
    """The final estimate, or where the line is missing the running estimate after the last chunk, the same number printed
    the same way: upstream's logger at the pin may lose a tool's last lines at exit (llama.cpp #22142; the fork and the
    baseline flush it, patch 0039)."""
    chunks, n_ctx = _chunks(text, "llama-perplexity")
    m = FINAL_PPL_RE.search(text) or re.search(rf"\[{chunks}\]" + NUM + ",", text)
    if not m:
        raise ParseError("llama-perplexity output has no 'Final estimate: PPL = ...' line", "see the tool's log for why it stopped")
    return PerplexityRun(_float(m.group(1)), chunks, n_ctx)


def _summary_stats(text: str) -> dict[str, float]:
    """The "name : value [± uncertainty]" lines after '====== Perplexity statistics ======'."""
    start = text.find("====== Perplexity statistics ======")
    stats: dict[str, float] = {}
    if start < 0:
        return stats
    for line in text[start:].splitlines():
        m = STAT_RE.match(line)
        if m:
            stats.setdefault(" ".join(m.group(1).split()), _float(m.group(2)))
    return stats


def parse_kld(text: str) -> KldRun:
    chunks, n_ctx = _chunks(text, "llama-perplexity --kl-divergence")
    stats = _summary_stats(text)
    needed = ("Mean PPL(Q)", "Mean PPL(base)", "Mean PPL(Q)/PPL(base)", "Mean KLD", "99.0% KLD", "Maximum KLD",
              "Same top p", "RMS Δp")
    missing = [k for k in needed if k not in stats]
    if missing:
        raise ParseError(
            f"llama-perplexity --kl-divergence printed no statistics ({', '.join(missing)} missing)",
            "it prints them only for 100 or more scored tokens: chunks x (ctx/2 - 1) must reach 100, raise --chunks or --ctx",
        )
    return KldRun(
        ppl=stats["Mean PPL(Q)"], ppl_base=stats["Mean PPL(base)"], ppl_ratio=stats["Mean PPL(Q)/PPL(base)"],
        mean_kld=stats["Mean KLD"], kld_p99=stats["99.0% KLD"], max_kld=stats["Maximum KLD"],
        same_top=stats["Same top p"] / 100.0, rms_dp=stats["RMS Δp"] / 100.0, chunks=chunks, n_ctx=n_ctx,
    )


def parse_decode(text: str) -> DecodeRun:
    matches = EVAL_RE.findall(text)
    if not matches:
        raise ParseError("llama-perplexity output has no 'llama_perf_context_print: eval time = ...' line",
                         "the decode benchmark needs --perf and -lv 4 (libllama's timings are info-level logs)")
    run = DecodeRun(int(matches[-1][1]), _float(matches[-1][0]), _float(matches[-1][2]))
    if not run.ms > 0:  # libllama prints "0.00 ms / 1 runs" when its timings are off
        raise ParseError("llama-perplexity timed no decode step (eval time 0 ms)",
                         "the decode benchmark needs --perf and -b 1 -ub 1")
    return run


def parse_bench(text: str) -> list[BenchRun]:
    records = bench_records(text)
    if not records:
        raise ParseError("llama-bench output has no JSON results", "run it with -o json or -o jsonl; see its log for errors")
    return [
        BenchRun(test_name(r), r["build_commit"], float(r["avg_ts"]), tuple(float(s) for s in r.get("samples_ts", ())))
        for r in records
    ]


@dataclass(frozen=True)
class ModelInfo:
    arch: str
    n_layer: int
    n_expert: int
    """0 for a dense model."""
    n_expert_used: int


def parse_model_info(text: str) -> ModelInfo:
    """The model's shape from libllama's "print_info: key = value" lines (logged at -lv 4)."""
    info: dict[str, str] = {}
    for m in PRINT_INFO_RE.finditer(text):
        info.setdefault(m.group(1), m.group(2).strip())
    if "arch" not in info or "n_layer" not in info:
        raise ParseError("the tool's log has no 'print_info: arch/n_layer = ...' lines", "run it with -lv 4")
    return ModelInfo(info["arch"], int(info["n_layer"]), int(info.get("n_expert", "0")), int(info.get("n_expert_used", "0")))


@dataclass(frozen=True)
class MoeHotInfo:
    """What the tool says it made hot (patch 0003's "llama_moe_hot: DEV: N layers, A[-B] of E experts hot
    per layer" lines, logged at -lv 4), over all devices."""

    layers: int
    n_min: int
    n_max: int


def parse_moe_hot(text: str) -> MoeHotInfo:
    lines = MOE_HOT_RE.findall(text)
    if not lines:
        raise ParseError("the tool's log has no 'llama_moe_hot: ... experts hot per layer' line",
                         "hot experts need --moe-hot-mib, a MoE model with experts in host memory, and -lv 4 to show the line")
    return MoeHotInfo(sum(int(n) for n, _, _ in lines), min(int(a) for _, a, _ in lines),
                      max(int(b or a) for _, a, b in lines))


@dataclass(frozen=True)
class MoeAdaptInfo:
    """The adaptive hot set's summary (patch 0004's "llama_moe_hot: adapt: U updates, S swaps, M MiB copied; hot hit
    rate H% ..." line, logged at -lv 4 when the context is freed)."""

    updates: int
    swaps: int
    mib_copied: float
    hit_rate: float
    """Percent of the split layers' selections whose expert was hot when computed."""
    routed_tokens: int
    """The tokens the hit rate and the swaps are over: every routed token (llama-perplexity's timings cover fewer)."""


def _search_line(regex: re.Pattern, text: str, line: str, hint: str) -> re.Match:
    """The match of a line the tool logs once, or a ParseError naming the line and what makes the tool print it."""
    m = regex.search(text)
    if not m:
        raise ParseError(f"the tool's log has no '{line}' line", hint)
    return m


def parse_moe_adapt(text: str) -> MoeAdaptInfo:
    m = _search_line(MOE_ADAPT_RE, text, "llama_moe_hot: adapt: ...",
                     "it needs --moe-hot-adapt, -lv 4, and a tool that ends normally (the line is printed when the context is freed)")
    return MoeAdaptInfo(int(m.group(1)), int(m.group(2)), _float(m.group(3)), _float(m.group(4)), int(m.group(5)))


def parse_graphs_reused(text: str) -> int | None:
    """llama.cpp's count of the steps that reused the step before's graph (not rebuilt, not allocated again), from the
    performance summary; None where the tool printed none."""
    m = GRAPHS_REUSED_RE.search(text)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class MoeWorkerFollowInfo:
    """Where the CPU worker's layers follow the adaptive hot set (patch 0041's "llama_moe_hot: adapt: the worker took part
    in N of its M layers at the end, after C changes" line, logged with the adapt line)."""

    layers_at_end: int
    layers: int  # those of the worker's GPU whose experts it can compute
    changes: int  # a layer's moves to or from the worker, each of which builds the graph anew


def parse_moe_worker_follow(text: str) -> MoeWorkerFollowInfo:
    m = _search_line(MOE_WORKER_FOLLOW_RE, text, "llama_moe_hot: adapt: the worker took part in ...",
                     "it needs --moe-hot-adapt with a worker (--moe-cold-worker), -lv 4, and LLAMA_MOE_WORKER_FOLLOW=1 (0041 is off without it)")
    return MoeWorkerFollowInfo(*(int(g) for g in m.groups()))


@dataclass(frozen=True)
class MoeWorkerShareInfo:
    """Where each layer's share of the CPU worker moves by the GPU's waits (patch 0048's "llama_moe_hot: --moe-cold-cpu-share
    auto: the worker's share of a layer's cold experts LO to HI, MEAN on average, after N moves of STEP" line, logged when the
    context is freed)."""

    low: float
    high: float
    """The least and the largest share of the worker's layers at the end."""
    mean: float
    """Their mean: what llama-server's /props gives as cold_cpu_share."""
    moves: int
    """A layer's share moved by step, summed over the layers."""
    step: float


def parse_moe_worker_share(text: str) -> MoeWorkerShareInfo:
    m = _search_line(MOE_WORKER_SHARE_RE, text, "llama_moe_hot: --moe-cold-cpu-share auto: ...",
                     "it needs --moe-cold-cpu-share auto with a worker (--moe-cold gpu, --moe-cold-worker), -lv 4, and a tool that "
                     "ends normally")
    low, high, mean, moves, step = m.groups()
    return MoeWorkerShareInfo(_float(low), _float(high), _float(mean), int(moves), _float(step))


@dataclass(frozen=True)
class MoeCpuInfo:
    """The CPU's part of a model with hot experts (patch 0019's "llama_perf_context_print:  moe CPU compute = T ms / N
    tokens (... ms per token), M MiB of cold experts (R GB/s)" line, printed with the performance summary when the
    selections are counted: --moe-hot-stats or --moe-hot-adapt)."""

    ms: float
    """Time the CPU backend computed its splits of the counted ubatches."""
    tokens: int
    cold_mib: float
    """The cold experts that the CPU read in that time."""
    gbs: float


def parse_moe_cpu(text: str) -> MoeCpuInfo:
    m = _search_line(MOE_CPU_RE, text, "moe CPU compute = ...",
                     "it needs hot experts with --moe-hot-stats or --moe-hot-adapt, and a tool that prints its performance summary")
    return MoeCpuInfo(_float(m.group(1)), int(m.group(2)), _float(m.group(3)), _float(m.group(4)))


@dataclass(frozen=True)
class MoeWorkerInfo:
    """The CPU worker's jobs (patch 0029's "llama_moe_worker: T threads computed J jobs, E experts (G GB) in S s: R GB/s" line,
    printed when the context is freed if the worker computed anything; S runs from each job's hand-over to its answer)."""

    threads: int
    jobs: int
    experts: int
    gb: float
    seconds: float
    gbs: float
    phase_us: list[float]
    """Thread 0's work a job in each phase (the input quantized, gate and up, their product quantized, down), the next line's;
    empty where the tool printed none."""
    wait_us: list[float]
    """Its wait a job at each phase's end for the other threads."""
    recv_waited: int | None = None
    """The jobs whose answer the backend (the GPU) waited for (patch 0033's line; None where the tool printed none)."""
    recv_wait_us_per_job: float | None = None
    """The backend's wait for the worker, over all jobs: what the worker added to the critical path a job."""
    in_part: int | None = None
    """Of its experts, the ones it computed in part, the GPU the rest (patch 0035's line; None where the tool printed none)."""

    @property
    def us_per_job(self) -> float | None:
        """The time from a job's hand-over to its answer, on average; None without a job."""
        return round(1e6 * self.seconds / self.jobs, 1) if self.jobs else None

    @property
    def recv_waited_pct(self) -> float | None:
        """The share of the jobs whose answer the backend waited for, %; None without the line or a job."""
        return round(100 * self.recv_waited / self.jobs, 1) if self.recv_waited is not None and self.jobs else None


def parse_moe_worker(text: str) -> MoeWorkerInfo:
    m = _search_line(MOE_WORKER_RE, text, "llama_moe_worker: ...",
                     "it needs --moe-cold-worker with experts handed to it, -lv 4, and a tool that ends normally")
    phases = MOE_WORKER_PHASES_RE.search(text)
    work, wait = ([_float(v) for v in g.split(" / ")] for g in phases.groups()) if phases else ([], [])
    recv = MOE_WORKER_RECV_RE.search(text)
    part = MOE_WORKER_PART_RE.search(text)
    return MoeWorkerInfo(int(m.group(1)), int(m.group(2)), int(m.group(3)), _float(m.group(4)), _float(m.group(5)), _float(m.group(6)),
                         work, wait, int(recv.group(1)) if recv else None, _float(recv.group(5)) if recv else None,
                         int(part.group(1)) if part else None)


@dataclass(frozen=True)
class MoeColdTopInfo:
    """The cold experts that --moe-cold-top skipped (patch 0020's "llama_moe_hot: --moe-cold-top N: S of T selections (P%) were of
    cold experts that were not computed; C cold experts computed (M MiB)" line, printed when the context is freed if the selections
    are counted: --moe-hot-stats or --moe-hot-adapt)."""

    top: int
    skipped: int
    """Selections of cold experts at the ranks from top on, not computed."""
    selections: int
    """Selections of the split layers' experts."""
    cold: int
    """Cold experts computed: the distinct ones of each ubatch and layer, summed."""
    cold_mib: float


def parse_moe_cold_top(text: str) -> MoeColdTopInfo:
    m = _search_line(MOE_COLD_TOP_RE, text, "llama_moe_hot: --moe-cold-top ...",
                     "it needs --moe-cold-top with --moe-hot-stats or --moe-hot-adapt, -lv 4, and a tool that ends normally")
    return MoeColdTopInfo(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(5)), _float(m.group(6)))
