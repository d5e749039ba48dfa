#!/usr/bin/env python3
"""The CPU worker's rate (--moe-cold-worker) with its own Q4_K dot products against the CPU backend's, on the CPU build.

    scripts/bench-worker-dot.py --bin dist/cpu/bin --model M.gguf --text T.txt --threads 1,2 --rounds 3 --out DIR

Each run is `llama-perplexity -b 1 -ub 1` with the cold experts read in place by the CPU backend
(LLAMA_MOE_COLD_IN_PLACE_CPU=1, 0026), routing drawn uniformly (`--moe-route uniform:1`), one expert a layer hot, and
every cold selection handed to a worker of T threads
(`--moe-cold-cpu-share 1`), once with the worker's 512-bit VNNI dot products and once with the CPU backend's
(LLAMA_MOE_WORKER_GGML_DOT=1), the two alternating in each round. The worker times each job from its hand-over to its
answer and logs its GB/s of expert bytes; the PPL of the two must be equal (the same sums). `-t` of the CPU backend is
1, so on a small machine the worker's threads share the cores with it: the rate is a lower bound of the worker's alone.

Results: DIR/worker-dot.json (every run, with its command), DIR/worker-dot.md, DIR/worker-dot.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.hot_experts import read_layout  # noqa: E402
from builder.report.parse import ParseError, parse_moe_worker  # noqa: E402

MIB = 1024 * 1024

DOTS = {"vnni": {}, "ggml": {"LLAMA_MOE_WORKER_GGML_DOT": "1"}}
"""The worker's dot products: its own (where the CPU has them) and the CPU backend's."""
PPL = re.compile(r"Final estimate: PPL = ([\d.]+)")


def one_expert_mib(model: Path) -> int:
    """The smallest --moe-hot-mib: one expert of every MoE layer."""
    layout = read_layout(model)
    if not layout.expert_bytes:
        sys.exit(f"error: {model} has no expert tensors (blk.N.ffn_*_exps): not a MoE model")
    return math.ceil(layout.total_bytes / layout.n_expert / MIB)


def command(args, threads: int) -> list[str]:
    # uniform routing: a random-weight model's router picks the same few experts for every token, which then stay in the caches
    return [str(args.bin / "llama-perplexity"), "-m", str(args.model), "-f", str(args.text), "-c", str(args.ctx), "--chunks", "1",
            "-b", "1", "-ub", "1", "-t", "1", "-nr", "-lv", "4", "--moe-route", "uniform:1", "--cpu-moe",
            "--moe-hot-mib", str(one_expert_mib(args.model)), "--moe-cold", "gpu", "--moe-cold-worker", str(threads), "--moe-cold-cpu-share", "1"]


def run(args, threads: int, dot: str) -> dict:
    cmd = command(args, threads)
    env = {"LLAMA_MOE_COLD_IN_PLACE_CPU": "1", **DOTS[dot]}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    text = proc.stdout + proc.stderr
    row = {"threads": threads, "dot": dot, "rc": proc.returncode,
           "cmd": " ".join(f"{k}={v}" for k, v in env.items()) + " " + shlex.join(cmd),
           "own_dot": "dot products (the CPU backend's sums" in text}
    if m := PPL.search(text):
        row["ppl"] = float(m.group(1))
    try:
        work = parse_moe_worker(text)
    except ParseError as e:
        row["error"] = str(e)
        return row
    row.update(experts=work.experts, jobs=work.jobs, gbs=work.gbs, us_per_job=round(1e6 * work.seconds / work.jobs, 1) if work.jobs else None,
               phase_us=work.phase_us)
    return row


def summarise(rows: list[dict]) -> list[dict]:
    cells = []
    for threads in sorted({r["threads"] for r in rows}):
        cell = {"threads": threads}
        for dot in DOTS:
            ok = [r for r in rows if (r["threads"], r["dot"]) == (threads, dot) and r["rc"] == 0 and "gbs" in r]
            if ok:
                cell[dot] = {"gbs": statistics.median(r["gbs"] for r in ok), "us_per_job": statistics.median(r["us_per_job"] for r in ok),
                             "runs": len(ok), "ppl": sorted({r["ppl"] for r in ok})}
        if "vnni" in cell and "ggml" in cell:
            cell["ratio"] = round(cell["vnni"]["gbs"] / cell["ggml"]["gbs"], 3)
            cell["same_ppl"] = cell["vnni"]["ppl"] == cell["ggml"]["ppl"]
        cells.append(cell)
    return cells


def markdown(cells: list[dict], rows: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "Worker GB/s of expert bytes (median of the rounds; µs a job from hand-over to answer):", "",
             "| worker threads | own VNNI dot products | the CPU backend's | ratio | same PPL |", "|---|---|---|---|---|"]
    for c in cells:
        def cell(dot):
            return f"{c[dot]['gbs']} GB/s, {c[dot]['us_per_job']} µs a job ({c[dot]['runs']} runs)" if dot in c else "not run"
        lines.append(f"| {c['threads']} | {cell('vnni')} | {cell('ggml')} | {c.get('ratio', '')} | "
                     f"{'yes' if c.get('same_ppl') else 'NO' if 'same_ppl' in c else ''} |")
    if not any(r.get("own_dot") for r in rows):
        lines += ["", "No run used the worker's own dot products: this CPU lacks 512-bit VNNI, or the model's experts are not Q4_K."]
    lines += ["", "Commands:", ""] + sorted({f"- `{r['cmd']}`" for r in rows})
    return "\n".join(lines) + "\n"


def plot(cells: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.38
    for k, dot in enumerate(DOTS):
        xs = [i + (k - 0.5) * width for i, c in enumerate(cells) if dot in c]
        ax.bar(xs, [c[dot]["gbs"] for c in cells if dot in c], width, label={"vnni": "worker's VNNI", "ggml": "CPU backend's"}[dot])
    ax.set_xticks(range(len(cells)), [str(c["threads"]) for c in cells])
    ax.set_xlabel("worker threads")
    ax.set_ylabel("GB/s of expert bytes")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=Path, required=True, help="the CPU build's bin folder (dist/cpu/bin)")
    ap.add_argument("--model", type=Path, required=True, help="a MoE GGUF with Q4_K experts")
    ap.add_argument("--text", type=Path, required=True)
    ap.add_argument("--threads", default="1,2", help="worker thread counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ctx", type=int, default=64, help="tokens a run (-c; one chunk)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--title", default="The CPU worker's Q4_K dot products")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    for path, what in ((args.bin / "llama-perplexity", "llama-perplexity"), (args.model, "the model"), (args.text, "the text")):
        if not path.exists():
            sys.exit(f"error: {what} not found at {path}")
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        sys.exit(f"error: --threads {args.threads!r}: give thread counts like 1,2")
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    for rnd in range(args.rounds):
        for t in threads:
            for dot in (DOTS if rnd % 2 == 0 else reversed(DOTS)):
                row = {"round": rnd, **run(args, t, dot)}
                rows.append(row)
                print(f"round {rnd} threads {t} {dot}: rc={row['rc']} {row.get('gbs')} GB/s {row.get('us_per_job')} µs/job ppl={row.get('ppl')}",
                      flush=True)
    cells = summarise(rows)
    (args.out / "worker-dot.json").write_text(json.dumps({"cells": cells, "runs": rows}, indent=1) + "\n")
    (args.out / "worker-dot.md").write_text(markdown(cells, rows, args.title))
    plot(cells, args.out / "worker-dot.png", args.title)
    print(markdown(cells, rows, args.title))
    return 0 if all(c.get("same_ppl", True) for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
