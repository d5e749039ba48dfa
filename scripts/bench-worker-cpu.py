#!/usr/bin/env python3
"""The CPU worker's rate (--moe-cold-worker) in CPU builds side by side, e.g. before and after a change to it.

    scripts/bench-worker-cpu.py --build before=DIR/cpu/bin --build after=dist/cpu/bin --model M.gguf --text T.txt \\
        --threads 1,2 --rounds 3 --out DIR

--env NAME:KEY=VALUE runs build NAME with that variable set, so one binary can run twice under two names, e.g.
`--build l2=dist/cpu/bin --build l1=dist/cpu/bin --env l1:LLAMA_MOE_WORKER_PREFETCH=l1`. A CUDA build runs the same
on the CPU with the GPU hidden (CUDA_VISIBLE_DEVICES= before the command): the worker's rate without the GPU's reads.

Each run is `llama-perplexity -b 1 -ub 1` with the cold experts read in place by the CPU backend
(LLAMA_MOE_COLD_IN_PLACE_CPU=1, 0026), routing drawn uniformly (`--moe-route uniform:1`: a random-weight model's router
picks the same few experts for every token, which then stay in the caches), one expert a layer hot, and every cold
selection handed to a worker of T threads (`--moe-cold-cpu-share 1`); the builds alternate in each round, their order
turning every round. `--hot-share 0.875 --cpu-share 0.5` gives the worker the small jobs it gets beside a GPU: about one
cold selection a token and layer (7/8 of the expert bytes hot), shared in parts with the CPU backend, which computes the
rest in place as the GPU would. The worker times each job from its hand-over to its answer and logs its GB/s of expert bytes; the
builds' PPL must be equal where the change keeps the sums. `-t` of the CPU backend is 1, so on a small machine the
worker's threads share the cores with it: a lower bound of the worker's rate alone. Use a model whose experts are
larger than the last-level cache, or the rate is the cache's.

Results: DIR/worker-cpu.json (every run, with its command), DIR/worker-cpu.md, DIR/worker-cpu.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.hot_experts import budget_mib, read_moe_layout  # noqa: E402
from builder.report.parse import ParseError, parse_moe_worker, parse_perplexity  # noqa: E402

ENV = {"LLAMA_MOE_COLD_IN_PLACE_CPU": "1"}


def command(bin_dir: Path, args, threads: int) -> list[str]:
    return [str(bin_dir / "llama-perplexity"), "-m", str(args.model), "-f", str(args.text), "-c", str(args.ctx), "--chunks", "1",
            "-b", "1", "-ub", "1", "-t", "1", "-nr", "-lv", "4", "--moe-route", "uniform:1", "--cpu-moe",
            "--moe-hot-mib", str(args.hot_mib), "--moe-cold", "gpu", "--moe-cold-worker", str(threads),
            "--moe-cold-cpu-share", str(args.cpu_share)]


def run(build: str, bin_dir: Path, args, threads: int, env: dict[str, str]) -> dict:
    cmd = command(bin_dir, args, threads)
    env = {**ENV, **env}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    text = proc.stdout + proc.stderr
    row = {"build": build, "threads": threads, "rc": proc.returncode,
           "cmd": " ".join(f"{k}={v}" for k, v in env.items()) + " " + shlex.join(cmd)}
    try:
        row["ppl"] = parse_perplexity(text).ppl
        work = parse_moe_worker(text)
    except ParseError as e:
        row["error"] = str(e)
        return row
    row.update(experts=work.experts, jobs=work.jobs, gbs=work.gbs, us_per_job=work.us_per_job, phase_us=work.phase_us)
    return row


def summarise(rows: list[dict], builds: list[str]) -> list[dict]:
    """Per thread count: each build's median GB/s and µs a job, its PPLs, and the other builds' rates ÷ the first's."""
    cells = []
    for threads in sorted({r["threads"] for r in rows}):
        cell: dict = {"threads": threads}
        for build in builds:
            ok = [r for r in rows if (r["threads"], r["build"]) == (threads, build) and r["rc"] == 0 and "gbs" in r]
            if ok:
                cell[build] = {"gbs": round(statistics.median(r["gbs"] for r in ok), 2),
                               "us_per_job": round(statistics.median(r["us_per_job"] for r in ok), 1),
                               "runs": len(ok), "ppl": sorted({r["ppl"] for r in ok})}
                if all(r["phase_us"] for r in ok):  # tools before 0029's phases line print none
                    cell[build]["phase_us"] = [round(statistics.median(phases), 1) for phases in zip(*(r["phase_us"] for r in ok))]
        first = builds[0]
        for build in builds[1:]:
            if first in cell and build in cell:
                cell[f"{build}/{first}"] = round(cell[build]["gbs"] / cell[first]["gbs"], 3)
        measured = [cell[b]["ppl"] for b in builds if b in cell]
        cell["same_ppl"] = all(p == measured[0] for p in measured)
        cells.append(cell)
    return cells


def markdown(cells: list[dict], rows: list[dict], builds: list[str], title: str) -> str:
    ratios = [f"{b}/{builds[0]}" for b in builds[1:]]
    lines = [f"# {title}", "", "The worker's GB/s of expert bytes (median of the rounds; µs a job from hand-over to answer):", "",
             "| worker threads | " + " | ".join(builds + ratios) + " | same PPL |", "|---" * (len(builds) + len(ratios) + 2) + "|"]
    for c in cells:
        values = [f"{c[b]['gbs']} GB/s, {c[b]['us_per_job']} µs a job ({c[b]['runs']} runs)" if b in c else "not run" for b in builds]
        values += [str(c.get(r, "")) for r in ratios]
        lines.append(f"| {c['threads']} | " + " | ".join(values) + f" | {'yes' if c['same_ppl'] else 'NO'} |")
    if any("phase_us" in c[b] for c in cells for b in builds if b in c):
        lines += ["", "A job's phases, thread 0's work in µs (median of the rounds): the input quantized / gate and up / their product "
                  "quantized / down:", "", "| worker threads | " + " | ".join(builds) + " |", "|---" * (len(builds) + 1) + "|"]
        lines += [f"| {c['threads']} | " + " | ".join(" / ".join(f"{t:.1f}" for t in c[b]["phase_us"]) if "phase_us" in c.get(b, {})
                                                       else "not printed" if b in c else "not run" for b in builds) + " |" for c in cells]
    failed = [r for r in rows if r["rc"] != 0 or "gbs" not in r]
    if failed:
        lines += ["", f"{len(failed)} runs failed or computed nothing on the worker: see worker-cpu.json."]
    lines += ["", "Commands:", ""] + sorted({f"- `{r['cmd']}`" for r in rows})
    return "\n".join(lines) + "\n"


def plot(cells: list[dict], builds: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(builds)
    for k, build in enumerate(builds):
        xs = [i + (k - (len(builds) - 1) / 2) * width for i, c in enumerate(cells) if build in c]
        ax.bar(xs, [c[build]["gbs"] for c in cells if build in c], width, label=build)
    ax.set_xticks(range(len(cells)), [str(c["threads"]) for c in cells])
    ax.set_xlabel("worker threads")
    ax.set_ylabel("GB/s of expert bytes")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_builds(values: list[str]) -> dict[str, Path]:
    builds: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            sys.exit(f"error: --build {value!r}: give NAME=BIN_DIR, e.g. --build after=dist/cpu/bin")
        if name in builds:
            sys.exit(f"error: --build {name} given twice: give each build its own name")
        builds[name] = Path(path)
    return builds


def parse_envs(values: list[str], builds: dict[str, Path]) -> dict[str, dict[str, str]]:
    envs: dict[str, dict[str, str]] = {name: {} for name in builds}
    for value in values:
        name, sep, assignment = value.partition(":")
        key, eq, setting = assignment.partition("=")
        if not sep or not eq or not key:
            sys.exit(f"error: --env {value!r}: give NAME:KEY=VALUE, e.g. --env l1:LLAMA_MOE_WORKER_PREFETCH=l1")
        if name not in envs:
            sys.exit(f"error: --env {value!r}: no --build is named {name!r}; name one of {', '.join(envs)}")
        envs[name][key] = setting
    return envs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", required=True, metavar="NAME=BIN_DIR",
                    help="a CPU build's bin folder under a name (repeatable; the first is the one the others are divided by)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME:KEY=VALUE",
                    help="run build NAME with the environment variable KEY set to VALUE (repeatable)")
    ap.add_argument("--model", type=Path, required=True, help="a MoE GGUF whose experts the worker can compute")
    ap.add_argument("--text", type=Path, required=True)
    ap.add_argument("--threads", default="1,2", help="worker thread counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ctx", type=int, default=128, help="tokens a run (-c; one chunk)")
    ap.add_argument("--hot-share", type=float, default=0.0,
                    help="the share of the expert bytes hot, from 0 (one expert a layer, the default) to below 1")
    ap.add_argument("--cpu-share", type=float, default=1.0,
                    help="--moe-cold-cpu-share: the worker's share of each token's cold selections, above 0 up to 1 (default)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--title", default="The CPU worker's rate")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if not 0.0 <= args.hot_share < 1.0:
        sys.exit(f"error: --hot-share {args.hot_share}: give a share of the expert bytes from 0 to below 1, e.g. 0.875")
    if not 0.0 < args.cpu_share <= 1.0:
        sys.exit(f"error: --cpu-share {args.cpu_share}: give the worker's share of the cold selections, above 0 up to 1, e.g. 0.5")
    builds = parse_builds(args.build)
    envs = parse_envs(args.env, builds)
    for name, bin_dir in builds.items():
        if not (bin_dir / "llama-perplexity").exists():
            sys.exit(f"error: build {name}: llama-perplexity not found in {bin_dir}")
    for path, what in ((args.model, "the model"), (args.text, "the text")):
        if not path.exists():
            sys.exit(f"error: {what} not found at {path}")
    try:
        layout = read_moe_layout(args.model)
    except ValueError as e:
        sys.exit(f"error: {e}")
    args.hot_mib = budget_mib(layout, args.hot_share)  # at least one expert of every layer hot, the smallest budget the tools take
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        sys.exit(f"error: --threads {args.threads!r}: give thread counts like 1,2")
    args.out.mkdir(parents=True, exist_ok=True)

    names = list(builds)
    rows = []
    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for t in threads:
            for name in order:
                row = {"round": rnd, **run(name, builds[name], args, t, envs[name])}
                rows.append(row)
                print(f"round {rnd} threads {t} {name}: rc={row['rc']} {row.get('gbs')} GB/s {row.get('us_per_job')} µs/job ppl={row.get('ppl')}",
                      flush=True)
    cells = summarise(rows, names)
    (args.out / "worker-cpu.json").write_text(json.dumps({"builds": {k: str(v) for k, v in builds.items()}, "envs": envs, "cells": cells, "runs": rows},
                                                         indent=1) + "\n")
    (args.out / "worker-cpu.md").write_text(markdown(cells, rows, names, args.title))
    plot(cells, names, args.out / "worker-cpu.png", args.title)
    print(markdown(cells, rows, names, args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
