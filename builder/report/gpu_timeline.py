"""The GPU's time in a decode, from a timeline that scripts/gpu-timeline.c (a CUPTI injection library) wrote.

Per kernel (demangled with c++filt where it is installed; the return type, namespaces and parameters left out, the
template arguments kept): launches, µs in all, µs a token and µs a launch, and its own µs: what it adds to the GPU's busy
time, the part of it after all work that started before it had ended. The two differ where launches overlap: under
programmatic dependent launch (PDL, on by default in sm_90 builds) a kernel starts while the one before it still runs and
waits inside for it (`cudaGridDependencySynchronize`), so its start-to-end time holds that wait, which depends on the
kernel before it; its own time does not.
Per copy kind: copies, MiB and µs; and the GPU's idle time a token: the gaps between the end of
all work on every stream and the next start, each gap under `long_gap_us` put on the kernel that ran after it (the one
that waited: after a split layer's wait for the CPU worker, the kernel that takes its answer). Longer gaps are host work
outside the decode (the warm-up, tokenizing, the model's load) and counted apart. Everything a token is over the tokens
the run decoded (llama-perplexity's count).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from ..errors import UsageError

COPY_KINDS = {1: "host to device", 2: "device to host", 8: "device to device", 10: "peer to peer"}


def read_timeline(path: Path) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, int, str]], int]:
    """Its kernels (start, end, name), copies and memsets (start, end, bytes, kind) and the records CUPTI dropped."""
    kernels, copies, dropped = [], [], 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split(" ", 4)
        try:
            if fields[0] == "K":
                kernels.append((int(fields[1]), int(fields[2]), fields[4]))
            elif fields[0] == "C":
                nbytes, kind = fields[4].split()
                copies.append((int(fields[1]), int(fields[2]), int(nbytes), COPY_KINDS.get(int(kind), "other copy")))
            elif fields[0] == "S":
                copies.append((int(fields[1]), int(fields[2]), int(fields[4]), "memset"))
            elif fields[0] == "D":
                dropped += int(fields[1])
            else:
                raise ValueError(fields[0])
        except (IndexError, ValueError):
            raise UsageError(f"{path}:{n}: not a line of scripts/gpu-timeline.c ({line[:80]!r}): "
                             "pass the GPU_TIMELINE_OUT file of a finished run")
    if not kernels:
        raise UsageError(f"{path}: no kernels recorded: did the run use the GPU, with CUDA_INJECTION64_PATH set?")
    return kernels, copies, dropped


def short_names(mangled: set[str]) -> dict[str, str]:
    """Each mangled name as a function and its template arguments (c++filt where installed), without the return type,
    namespaces and parameters: the instances of a template (e.g. mul_mat_vec_q's per type and fusion) stay apart."""
    names = sorted(mangled)
    plain = names
    if shutil.which("c++filt"):
        plain = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                               check=True).stdout.splitlines()
    return {m: kernel_name(p) for m, p in zip(names, plain)}


def kernel_name(demangled: str) -> str:
    """'void (anonymous namespace)::k<(ggml_type)12, 1>(float const*, int)' -> 'k<(ggml_type)12, 1>'."""
    name = demangled.replace("(anonymous namespace)::", "")
    depth = 0
    for i, ch in enumerate(name):
        depth += (ch == "<") - (ch == ">")
        if ch == "(" and depth == 0:
            name = name[:i]
            break
    function = re.split(r"\s(?![^<]*>)", name.strip())[-1]  # the last word outside templates: no return type
    return re.sub(r"^(\w+::)+", "", function)


def summarize(path: Path, tokens: int, long_gap_us: float = 1000.0) -> dict:
    """The timeline at `path` summed up, a token being one of the `tokens` the run decoded."""
    kernels, copies, dropped = read_timeline(path)
    names = short_names({k[2] for k in kernels})
    per_kernel = defaultdict(lambda: {"launches": 0, "us": 0.0, "own_us": 0.0, "idle_before_us": 0.0})
    work = sorted([(s, e, names[n]) for s, e, n in kernels] + [(s, e, None) for s, e, _, _ in copies])
    busy_until, busy_us, idle_us, long_gaps_us, n_long = work[0][0], 0.0, 0.0, 0.0, 0
    for s, e, name in work:
        if name is not None:
            per_kernel[name]["launches"] += 1
            per_kernel[name]["us"] += (e - s) / 1e3
        gap_us = (s - busy_until) / 1e3
        if gap_us > 0:
            if gap_us >= long_gap_us:
                long_gaps_us += gap_us
                n_long += 1
            else:
                idle_us += gap_us
                per_kernel[name or "(a copy)"]["idle_before_us"] += gap_us
        own_us = max(0, e - max(s, busy_until)) / 1e3
        busy_us += own_us
        if name is not None:
            per_kernel[name]["own_us"] += own_us
        busy_until = max(busy_until, e)
    per_copy = defaultdict(lambda: {"copies": 0, "mib": 0.0, "us": 0.0})
    for s, e, nbytes, kind in copies:
        per_copy[kind]["copies"] += 1
        per_copy[kind]["mib"] += nbytes / 2**20
        per_copy[kind]["us"] += (e - s) / 1e3
    for row in per_kernel.values():
        row["us_per_token"] = row["us"] / tokens
        row["idle_before_us_per_token"] = row["idle_before_us"] / tokens
        row["us_per_launch"] = row["us"] / row["launches"] if row["launches"] else 0.0
        row["own_us_per_token"] = row["own_us"] / tokens
        row["own_us_per_launch"] = row["own_us"] / row["launches"] if row["launches"] else 0.0
    return {
        "tokens": tokens,
        "records_dropped": dropped,
        "busy_us_per_token": busy_us / tokens,
        "idle_us_per_token": idle_us / tokens,
        "long_gaps": {"count": n_long, "us": long_gaps_us, "at_least_us": long_gap_us},
        "kernels": dict(sorted(per_kernel.items(), key=lambda kv: -(kv[1]["us"] + kv[1]["idle_before_us"]))),
        "copies": dict(per_copy),
    }


def render(summary: dict, top: int) -> str:
    lines = [f"GPU busy {summary['busy_us_per_token']:.1f} us a token, idle {summary['idle_us_per_token']:.1f} "
             f"(gaps under {summary['long_gaps']['at_least_us']:g} us; {summary['long_gaps']['count']} longer ones, "
             f"{summary['long_gaps']['us'] / 1e3:.1f} ms, left out) over {summary['tokens']} tokens"
             + (f"; CUPTI dropped {summary['records_dropped']} records" if summary["records_dropped"] else ""),
             "",
             "| kernel | launches a token | us a token | us a launch | its own us a launch | idle before it, us a token |",
             "|---|---|---|---|---|---|"]
    for name, row in list(summary["kernels"].items())[:top]:
        lines.append(f"| {name} | {row['launches'] / summary['tokens']:.1f} | {row['us_per_token']:.1f} | "
                     f"{row['us_per_launch']:.2f} | {own_text(row.get('own_us_per_launch'))} | {row['idle_before_us_per_token']:.1f} |")
    if summary["copies"]:
        lines += ["", "| copies | count | MiB | us |", "|---|---|---|---|"]
        for kind, row in summary["copies"].items():
            lines.append(f"| {kind} | {row['copies']} | {row['mib']:.1f} | {row['us']:.0f} |")
    return "\n".join(lines)


def own_text(own_us_per_launch: float | None) -> str:
    """A kernel's own µs a launch, or a dash where its summary was recorded before they were (None: reports up to
    2026-12-06-hot-ranks-h100)."""
    return f"{own_us_per_launch:.2f}" if own_us_per_launch is not None else "–"
