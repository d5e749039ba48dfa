#!/usr/bin/env python3
"""How fast the CPU streams cold experts in decode, per thread count, against the machine's memory bandwidth
(issue 10 item 4: ≥ 70 % of it; the default thread count for the cold part is to be picked from this).

    scripts/bench-cold-cpu.py --bench dist/cuda-sm90/bin/llama-bench --model M.gguf --threads 1,2,4,8,16 \\
        --args="-ngl 99 -ncmoe 99" --out DIR

Each thread count runs `llama-bench -p 0 -n N -t T` with every expert on the CPU (`--args`, e.g. `-ngl 99 -ncmoe 99`
on a GPU machine, nothing on a CPU build) and routing replaced by uniform draws (`--moe-route uniform:SEED`): a
random-weight model's router picks the same few experts for every token, which then stay in the CPU's caches. A
token reads `experts used` experts per MoE layer, so the cold bytes a token streams are known from the GGUF, and
GB/s = tokens/s × those bytes. That counts the whole decode step as expert time (attention and the rest on the
same CPU or GPU make it a lower bound of the expert streaming rate).

One more run without `-t` gives llama.cpp's default thread count (as llama-bench reports it) and its speed, to compare
with the fastest count.

The bandwidth it is compared with: processes that each sum their own 256 MiB array with numpy, one per thread
count, all at once (a read-only STREAM-like figure; the best of 3).

Results: DIR/cold-cpu.json (the source), DIR/cold-cpu.md, DIR/cold-cpu.png.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.hot_experts import read_moe_layout  # noqa: E402

GB = 1e9
PROBE_BYTES = 256 * 1024 * 1024


def experts_used(gguf_path: Path) -> int:
    from gguf import GGUFReader

    fields = GGUFReader(gguf_path).fields
    key = next((k for k in fields if k.endswith(".expert_used_count")), None)
    if key is None:
        sys.exit(f"error: {gguf_path} has no <arch>.expert_used_count: not a MoE model")
    return int(fields[key].contents())


def cold_bytes_per_token(gguf_path: Path) -> int:
    """The expert bytes one decoded token reads when every expert is cold: `experts used` experts in every MoE layer."""
    try:
        layout = read_moe_layout(gguf_path)
    except ValueError as e:
        sys.exit(f"error: {e}")
    return experts_used(gguf_path) * layout.total_bytes // layout.n_expert


def _read_once(_: int) -> float:
    data = np.ones(PROBE_BYTES // 8)
    start = time.perf_counter()
    data.sum()
    return time.perf_counter() - start


def memory_bandwidth(processes: int, repeats: int = 3) -> float:
    """GB/s of `processes` processes reading their own array at once, the best of `repeats`."""
    best = 0.0
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for _ in range(repeats):
            seconds = pool.map(_read_once, range(processes))
            best = max(best, processes * PROBE_BYTES / max(seconds) / GB)
    return best


def bench_command(args: argparse.Namespace, threads: str | None) -> list[str]:
    """llama-bench decoding --tokens tokens with `threads` threads (None: llama.cpp's default) under uniform routing,
    and --args."""
    return [str(args.bench), "-m", str(args.model), "-p", "0", "-n", str(args.tokens), *(["-t", threads] if threads else []),
            "-r", str(args.reps), "-o", "jsonl", "--moe-route", f"uniform:{args.seed}", *shlex.split(args.args)]


def bench(cmd: list[str]) -> tuple[float, int]:
    """llama-bench's tokens/s and the threads it ran with."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"error: {shlex.join(cmd)} exited {proc.returncode}: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return float(rows[-1]["avg_ts"]), int(rows[-1]["n_threads"])


def render_md(result: dict) -> str:
    lines = [f"# Cold experts streamed by the CPU, `{Path(result['model']).name}`", "",
             f"`{result['command']}`", "",
             f"A token reads {result['cold_bytes_per_token'] / 1e6:.1f} MB of experts ({result['experts_used']} a layer, "
             "uniform routing). GB/s = tokens/s × that; memory: numpy processes reading at once.", "",
             "| threads | tokens/s | cold GB/s | memory GB/s | share |", "|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['threads']} | {r['tokens_per_s']:.2f} | {r['cold_gb_per_s']:.1f} | {r['memory_gb_per_s']:.1f} | "
                     f"{r['share']:.2f} |")
    best = max(result["runs"], key=lambda r: r["tokens_per_s"])
    default = result["default"]
    lines += ["", f"Fastest: {best['threads']} threads, {best['cold_gb_per_s']:.1f} GB/s, {best['share']:.0%} of the memory "
              f"bandwidth that many processes read (the issue's bar: 70 %).",
              f"llama.cpp's default (no `-t`): {default['threads']} threads, {default['tokens_per_s']:.2f} tokens/s, "
              f"{default['cold_gb_per_s']:.1f} GB/s ({default['tokens_per_s'] / best['tokens_per_s']:.2f} of the fastest)."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = [r["threads"] for r in result["runs"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(threads, [r["cold_gb_per_s"] for r in result["runs"]], marker="o", label="cold experts (decode)")
    ax.plot(threads, [r["memory_gb_per_s"] for r in result["runs"]], marker="s", linestyle="--", label="memory read (numpy)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("threads")
    ax.set_ylabel("GB/s")
    ax.set_title(Path(result["model"]).name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", type=Path, required=True, help="llama-bench of the fork or the baseline (it needs --moe-route)")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--threads", default="1,2,4,8")
    p.add_argument("--tokens", type=int, default=32, help="decoded tokens per repetition (default: %(default)s)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--args", default="", help="more llama-bench arguments, e.g. \"-ngl 99 -ncmoe 99\"")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    threads = [int(t) for t in args.threads.split(",")]
    if not threads or min(threads) < 1:
        sys.exit(f"error: --threads {args.threads}: give thread counts of at least 1, e.g. 1,2,4,8")
    per_token = cold_bytes_per_token(args.model)
    runs = []
    for t in threads:
        tokens_per_s, _ = bench(bench_command(args, str(t)))
        memory = memory_bandwidth(t)
        cold = tokens_per_s * per_token / GB
        runs.append({"threads": t, "tokens_per_s": tokens_per_s, "cold_gb_per_s": cold, "memory_gb_per_s": memory,
                     "share": cold / memory})
        print(f"{t:3} threads: {tokens_per_s:8.2f} t/s, cold {cold:6.1f} GB/s, memory {memory:6.1f} GB/s", flush=True)
    default_ts, default_threads = bench(bench_command(args, None))
    result = {"model": str(args.model), "experts_used": experts_used(args.model), "cold_bytes_per_token": per_token,
              "command": shlex.join(bench_command(args, "T")),
              "runs": runs,
              "default": {"threads": default_threads, "tokens_per_s": default_ts, "cold_gb_per_s": default_ts * per_token / GB}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cold-cpu.json").write_text(json.dumps(result, indent=1) + "\n")
    md = render_md(result)
    (args.out / "cold-cpu.md").write_text(md)
    plot(result, args.out / "cold-cpu.png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
