#!/usr/bin/env python3
"""Decode (or prompt processing) speed of expert placements at the same VRAM, per replayed routing (shared/BENCHMARK.md).

Runs on the GPU machine with the fork and the baseline (upstream + the routing patch) built:

    scripts/bench-placements.py --model M.gguf --text T.txt --route zipf=replay.bin:profile.bin \\
        --route learned=replay.bin:profile.bin --budgets 25,50,75 --rounds 2 --out DIR

Every run is `llama-perplexity -c 512 --chunks C -b 1 -ub 1` (one token per step; `--ubatch 512`: steps of
512 tokens, prompt processing) with the routing replayed from the trace (`--moe-route trace:`), so all sides
compute the same experts; tokens/s come from its eval-time line (prompt processing: less the untimed first pass, so
C >= 2). A round runs every cell (routing and budget) in
turn, the cell's configurations rotated by the round's number (`--first-round` continues the count), so that none
always runs first: the machine's speed drifts between runs. With --stats the fork's runs also count the selections
(--moe-hot-stats) and record the CPU's time per token and the GB/s of cold experts it read (patch 0019's line); the
read-back that costs makes them a little slower, so compare their speeds only with each other. meta.json records the
static sets' hit rates (hot-gpu's and hot-gpu-in's, computed from the traces over the timed tokens) for
report-placements.py's line of decode time against misses; a second call into the same --out appends its runs and adds
its routings and budgets to meta.json, refused where its model or settings differ. Per routing and budget (a share of the model's expert bytes) it runs:

    ncmoe       baseline, -ncmoe N: the experts of N layers on the CPU, the others' in the same VRAM
    lru         baseline, --cpu-moe --moe-cache-mib B (upstream's LRU of expert copies)
    lru-pinned  the same with -lm none: the experts in pinned memory, so its copies run at full bus speed
    hot-cpu     fork, --cpu-moe --moe-hot-mib B --moe-hot-profile P, cold experts on the CPU after the GPU's hot part
                (patch 0003; LLAMA_MOE_COLD_OVERLAP=0 turns 0017's overlap off)
    hot-cpu-overlap  the same while the GPU computes the hot part (0016-0017, the default since 2026-12-02)
    hot-hybrid  fork, --moe-cold hybrid -lm none: each layer's cold experts split between the CPU and the GPU reading
                in place, at the same time (0018)
    hot-hybrid-30, hot-hybrid-70  hot-hybrid with --moe-cold-cpu-share 0.3 and 0.7 (the default is 0.5)
    adapt-hybrid  adapt-gpu-noise with --moe-cold hybrid (0018)
    hot-gpu     fork, the same with --moe-cold gpu -lm none, cold experts read in place (patch 0005), hot and cold
                experts of a layer in one mul_mat_id (0011, 0012)
    hot-gpu-2p  the same with LLAMA_MOE_HOT_TWO_PARTS=1: two mul_mat_ids a layer, hot and cold (0005 before 0012)
    hot-gpu-in  hot-gpu with the profile of the replayed text itself (in-sample): the static set's upper bound, which
                an adaptive set should come within 5 % of (issue 10); not a placement a user could run; hot-gpu-worker-in
                the same with the worker of hot-gpu-worker, the bound for the adaptive sets with the worker;
                hot-gpu-worker-in-all the same with the worker in every split layer (as -all below: in-sample, the layers
                expect too few cold selections to keep it)
    adapt-gpu   fork, --moe-hot-mib B --moe-hot-adapt 8 --moe-cold gpu -lm none, no profile, the swap rule's defaults
                (0004 + 0005)
    adapt-gpu-profile  fork, starting from the profile, --moe-hot-adapt 32 --moe-hot-adapt-ratio 4, the rule before 0015
                (--moe-hot-adapt-noise 0; 0010, the setting scripts/placement-model.py --adapt favoured)
    adapt-gpu-m4  the same with --moe-hot-adapt-margin 4: the model's swaps under zipf:1.0 fall from 0.3-2.2 to
                0.04-0.14 a token, its hit rate under learned routing 0.2-1 point lower
    adapt-gpu-noise  adapt-gpu-profile with 0015's noise rule (its default, --moe-hot-adapt-noise 2.5): the model's swaps
                under zipf:1.0 none, under uniform 0.14-0.24 a token, its speed under learned routing within 2 points
    hot-gpu-top6, hot-gpu-top4, adapt-gpu-top6  lossy: hot-gpu and adapt-gpu-noise with --moe-cold-top 6 or 4, cold
                experts computed only at a token's first 6 or 4 ranks (0020); with --stats they record the share of the
                selections skipped. The ranks are the replayed trace's order: the trained model's for learned routing,
                arbitrary for the synthetic ones. Their cost in accuracy is the fidelity stage's, not measured here
    hot-gpu-counted  hot-gpu counting the selections (--moe-hot-stats): the read-back after every ubatch that
                --moe-hot-adapt and llama-server --metrics take, without swaps (against hot-gpu: what counting costs;
                with --stats both count); hot-gpu-counted-copy counts as before 0022, from copies of the selected experts
                (LLAMA_MOE_HOT_COUNT_COPY=1; against hot-gpu-counted: what counting in the down experts' node saves)
    hot-gpu-worker  hot-gpu with --moe-cold-worker 8: 8 CPU threads compute half of each token's cold experts while the
                GPU reads the rest in place (0028-0029); -0, -30, -40, -60, -70, -100 hand the CPU none, 0.3, 0.4,
                0.6, 0.7 or all of them (-0: the cost of the worker's two nodes a layer alone; -100: the CPU's rate
                alone), -t4 and -t12 run 4 and 12 threads (beside -t 8 of the CPU backend and the host thread); -cput4 (and
                adapt-gpu-worker-cput4) keep the worker's 8 and give the CPU backend 4 (-t 4, after --threads: the last -t
                counts), so that the worker's polling threads and the backend's fit the host's 16 cores; -sleep (and
                adapt-gpu-worker-sleep) have the worker's threads sleep as soon as a decode step ends instead of polling
                20 ms (LLAMA_MOE_WORKER_POLL_US=0, 0051); -pinned (and adapt-gpu-worker-pinned) pin the worker's threads
                to the upper half of the host's CPUs (LLAMA_MOE_WORKER_CPUS, 0052) and the CPU backend's OpenMP threads
                to the lower half (OMP_PLACES, OMP_PROC_BIND=close); -all gives every split layer the worker, also
                those that expect fewer than 0.2 (0.5 before 0054) cold selections a token
                (LLAMA_MOE_WORKER_MIN_COLD=0); adapt-gpu-worker is adapt-gpu-noise with the worker (-30 and -40 at
                the worker's share 0.3 and 0.4), -noise1 with
                --moe-hot-adapt-noise 1 (more swaps: trace-stats simulates 97.7 / 83.4 % hits at learned 50 / 25 %
                against the default's 96.0 / 82.8, 2026-12-04); adapt-gpu-worker-ratio2 with --moe-hot-adapt-ratio 2
                --moe-hot-adapt-noise 1.5 (trace-stats' rule simulates 95.9 / 79.9 % hits over a 512-token run at
                learned 50 / 25 % against the default's 94.5 / 78.7, for 0.21 / 0.24 swaps a token), -noise2 with
                --moe-hot-adapt-noise 2 (trace-stats --tokens 1024: 96.1 / 80.4 % against 95.3 / 79.9; on an H200 over
                two chunks 0.97 / 1.02x adapt-gpu-worker at 50 / 25 %, one sample, 2026-12-06), -decay70 with
                --moe-hot-adapt-decay 0.7 (0056; trace-stats over the whole held-out prose: 96.88 / 81.27 % hits
                against 96.49 / 81.23 at learned 50 / 25 %); hot-gpu-worker-l1 and -l2 ask for the next row into L1
                (0030) or 2 KiB ahead into L2 (0034) whatever the CPU (LLAMA_MOE_WORKER_PREFETCH); hot-gpu-worker-whole and adapt-gpu-worker-whole hand
                the worker whole experts only, as before 0035 (LLAMA_MOE_WORKER_WHOLE=1); adapt-gpu-worker-40-noise1 is
                -noise1 at share 0.4 (a lone cold expert: 1 of its 3 parts to the worker); adapt-gpu-worker-inline and
                -noise1-inline queue the swaps' copies on the layer's stream ahead of the next ubatch, live at once, as
                before 0037 (LLAMA_MOE_HOT_SWAP_INLINE=1; against the same without: what the copies' own stream saves);
                hot-gpu-worker-defer, -defer-100 (share 1) and adapt-gpu-worker-defer defer the worker's experts to the next
                layer's output (LLAMA_MOE_WORKER_DEFER=1, 0038): lossy, reported apart from the lossless placements.
                hot-gpu-worker-auto and adapt-gpu-worker-auto move each layer's share by the GPU's waits for the worker
                (--moe-cold-cpu-share auto, 0048), from 0.5; adapt-gpu-worker-t4 and -t4-auto are adapt-gpu-worker and
                -auto with a worker of 4 threads: a slow worker on any host (4 threads took 1.3-1.9x the 8 threads' time
                a job on the H200 of 2026-12-04, a slow host's 8 threads 1.2-1.7x a fast one's: H100s of 2026-12-07
                and -06), where auto is meant to gain. hot-gpu-inplace and adapt-gpu-worker-inplace have the GPU's
                products read a cold expert's rows in place over the bus (GGML_CUDA_MOE_COLD_IN_PLACE=1), where by
                default a block reads its rows into shared memory first (0049); hot-gpu-worker-in-inplace is
                hot-gpu-worker-in with the rows read in place, so its launches reserve no shared memory for staging
                (with --timeline at 75 %, where its blocks read hot copies only: what that reservation costs the split
                layers' mat-vecs). hot-gpu-worker-40-plane and
                adapt-gpu-worker-40-plane are -40 with down's first part read from planes of its own
                (LLAMA_MOE_WORKER_DOWN_PLANE=1, 0053; at 0.4 a lone cold expert gives the worker that one part).
                Each run records the worker's experts (and how many of them in part), its GB/s and its time per job from hand-over to answer

plus, once per routing, all on the GPU, all experts on the CPU, and every expert hot. The static
profile P is a trace of other text than the replayed one. Rounds alternate over all runs. Results:
DIR/runs.jsonl (one line per run, with its command, and anon_huge_mib: the most of its memory in transparent huge
pages seen while it ran, which says whether 0031's huge pages were there to compare with the -4k runs), summarised by
scripts/report-placements.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder import hot_experts, huge_pages, moe_trace  # noqa: E402
from builder.errors import UsageError  # noqa: E402
from builder.report import gpu_timeline  # noqa: E402
from builder.report.meta import merge_meta  # noqa: E402
from builder.report.parse import (ParseError, parse_graphs_reused, parse_moe_adapt, parse_moe_cold_top, parse_moe_cpu,  # noqa: E402
                                  parse_moe_worker, parse_moe_worker_follow, parse_moe_worker_share)

CONFIGS = ("ncmoe", "lru", "lru-pinned", "hot-cpu", "hot-cpu-overlap", "hot-hybrid", "hot-hybrid-30", "hot-hybrid-70", "hot-gpu", "hot-gpu-2p", "hot-gpu-in", "adapt-gpu",
           "adapt-gpu-profile", "adapt-gpu-m4", "adapt-gpu-noise", "adapt-gpu-noise2", "adapt-hybrid", "hot-gpu-top6", "hot-gpu-top4", "adapt-gpu-top6",
           "hot-gpu-counted", "hot-gpu-counted-wait", "hot-gpu-counted-copy", "hot-gpu-nographs", "hot-gpu-counted-nographs",
           "hot-gpu-prefetch", "adapt-gpu-prefetch", "hot-gpu-prefetch-oracle", "adapt-gpu-prefetch-oracle", "hot-gpu-prefetch2-oracle",
           "hot-gpu-prefetch-router", "hot-gpu-prefetch2-router", "adapt-gpu-prefetch-router", "hot-gpu-prefetch-oracle-early",
           "hot-gpu-prefetch2-oracle-early", "hot-gpu-worker", "hot-gpu-worker-0", "hot-gpu-worker-30", "hot-gpu-worker-40", "hot-gpu-worker-60",
           "hot-gpu-worker-70", "hot-gpu-worker-100", "hot-gpu-worker-t4", "hot-gpu-worker-t12", "hot-gpu-worker-all", "adapt-gpu-worker",
           "hot-gpu-worker-4k", "adapt-gpu-worker-4k", "hot-gpu-4k", "adapt-gpu-worker-noise1", "adapt-gpu-worker-ratio2", "adapt-gpu-worker-noise2",
           "hot-gpu-worker-l1", "hot-gpu-worker-l2", "hot-gpu-worker-whole", "adapt-gpu-worker-whole", "adapt-gpu-worker-40-noise1",
           "adapt-gpu-worker-inline", "adapt-gpu-worker-noise1-inline", "hot-gpu-worker-in", "hot-gpu-worker-in-all", "hot-gpu-worker-in-inplace", "hot-gpu-worker-defer",
           "hot-gpu-worker-defer-100", "adapt-gpu-worker-defer", "adapt-gpu-worker-follow", "adapt-gpu-worker-noise1-follow",
           "hot-gpu-worker-auto", "adapt-gpu-worker-auto", "hot-gpu-inplace", "adapt-gpu-worker-inplace",
           "adapt-gpu-worker-30", "adapt-gpu-worker-40", "hot-gpu-worker-cput4", "adapt-gpu-worker-cput4",
           "hot-gpu-worker-sleep", "adapt-gpu-worker-sleep", "hot-gpu-worker-pinned", "adapt-gpu-worker-pinned",
           "hot-gpu-worker-40-plane", "adapt-gpu-worker-40-plane", "adapt-gpu-worker-decay70", "adapt-gpu-worker-t4",
           "adapt-gpu-worker-t4-auto", "hot-gpu-worker-even", "hot-gpu-worker-in-even", "adapt-gpu-worker-even")
PREDICTED = ("hot-gpu-prefetch", "adapt-gpu-prefetch")
"""Configurations that prefetch the experts a routing's ranking trace names (NAME=REPLAY:PROFILE:RANKING): skipped without one."""
# the references with every expert hot: `all-hot` counts by copies (--moe-hot-stats), `all-hot-gpu` reads each layer in one
# pass (--moe-cold gpu), so that with --moe-hot-stats its down node counts in the kernel (ggml_mul_mat_id_set_counts)
ALL_HOT = ("all-hot", "all-hot-gpu")
REFERENCES = ("all-gpu", "cpu-moe", *ALL_HOT)
"""The reference runs (--refs), once per routing."""
NO_CUDA_GRAPHS = {"GGML_CUDA_DISABLE_GRAPHS": "1"}
PREFETCH_EARLY = {"LLAMA_MOE_PREFETCH_EARLY": "1"}
"""The prefetch's copies from the layer before's MoE input, beside its experts, as before 0027."""
SMALL_PAGES = {"GGML_CUDA_NO_HUGE_PAGES": "1"}
"""The host experts in cudaMallocHost's 4 KiB pages, as before 0031 (the -4k configurations). Upstream's placements run
so too where they run on the fork's binary (BASELINE=0); the baseline's binary ignores the variable."""
WHOLE_EXPERTS = {"LLAMA_MOE_WORKER_WHOLE": "1"}
"""The worker's share in whole experts, as before 0035 shared an expert in parts with the GPU."""
SWAPS_INLINE = {"LLAMA_MOE_HOT_SWAP_INLINE": "1"}
"""The adaptive swaps' copies on the layer's stream ahead of the next ubatch, live at once, as before 0037."""
DEFER = {"LLAMA_MOE_WORKER_DEFER": "1"}
"""The worker's experts of a layer join the next layer's output (0038, lossy)."""
WORKER_FOLLOWS = {"LLAMA_MOE_WORKER_FOLLOW": "1"}
"""The worker's layers move with the adaptive set (0041, off by default: 0.95x the load's choice at learned 50 and 75 %,
reports/2026-12-05-worker-follows)."""
COLD_IN_PLACE = {"GGML_CUDA_MOE_COLD_IN_PLACE": "1"}
"""The GPU's products read a cold expert's rows in place over the bus, where by default a block reads its rows into shared
memory first (0049, the same PPL)."""
WORKER_SLEEPS = {"LLAMA_MOE_WORKER_POLL_US": "0"}
"""The worker's threads sleep as soon as a decode step ends, where by default they poll 20 ms more (0051)."""
DOWN_PLANES = {"LLAMA_MOE_WORKER_DOWN_PLANE": "1"}
"""The worker reads down's first part from planes of its own, where by default it reads it in down's rows (0053)."""
EVEN_SPREAD = {"LLAMA_MOE_HOT_EVEN": "1"}
"""The budget spread evenly over the layers, where with a profile 0058 spreads it by the profile's selections."""


def pinned_env(cpus: list[int]) -> dict[str, str]:
    """The CPU backend's OpenMP threads on the lower half of `cpus` (this process's, sorted), one a CPU, and the worker's
    threads on the upper half (0052), where by default the OS places both."""
    half = max(1, len(cpus) // 2)
    upper = cpus[half:] or cpus
    return {"OMP_PLACES": f"{{{cpus[0]}}}:{half}", "OMP_PROC_BIND": "close", "LLAMA_MOE_WORKER_CPUS": f"{upper[0]}-{upper[-1]}"}


WORKER_EVERY_LAYER = {"LLAMA_MOE_WORKER_MIN_COLD": "0"}
WORKER_PINNED = pinned_env(sorted(os.sched_getaffinity(0)))
CONFIG_ENV = {"hot-gpu-2p": {"LLAMA_MOE_HOT_TWO_PARTS": "1"}, "hot-cpu": {"LLAMA_MOE_COLD_OVERLAP": "0"},
              "hot-cpu-overlap": {"LLAMA_MOE_COLD_OVERLAP": "1"}, "hot-gpu-counted-wait": {"LLAMA_MOE_HOT_COUNT_WAIT": "1"},
              "hot-gpu-counted-copy": {"LLAMA_MOE_HOT_COUNT_COPY": "1"},
              "hot-gpu-nographs": NO_CUDA_GRAPHS, "hot-gpu-counted-nographs": NO_CUDA_GRAPHS,
              "hot-gpu-prefetch-oracle-early": PREFETCH_EARLY, "hot-gpu-prefetch2-oracle-early": PREFETCH_EARLY,
              "hot-gpu-worker-all": WORKER_EVERY_LAYER, "hot-gpu-worker-in-all": WORKER_EVERY_LAYER,
              "hot-gpu-worker-4k": SMALL_PAGES, "adapt-gpu-worker-4k": SMALL_PAGES, "hot-gpu-4k": SMALL_PAGES,
              "hot-gpu-worker-l1": {"LLAMA_MOE_WORKER_PREFETCH": "l1"}, "hot-gpu-worker-l2": {"LLAMA_MOE_WORKER_PREFETCH": "l2"},
              "hot-gpu-worker-whole": WHOLE_EXPERTS, "adapt-gpu-worker-whole": WHOLE_EXPERTS,
              "adapt-gpu-worker-inline": SWAPS_INLINE, "adapt-gpu-worker-noise1-inline": SWAPS_INLINE,
              "hot-gpu-worker-defer": DEFER, "hot-gpu-worker-defer-100": DEFER, "adapt-gpu-worker-defer": DEFER,
              "adapt-gpu-worker-follow": WORKER_FOLLOWS, "adapt-gpu-worker-noise1-follow": WORKER_FOLLOWS,
              "hot-gpu-inplace": COLD_IN_PLACE, "adapt-gpu-worker-inplace": COLD_IN_PLACE, "hot-gpu-worker-in-inplace": COLD_IN_PLACE,
              "hot-gpu-worker-sleep": WORKER_SLEEPS, "adapt-gpu-worker-sleep": WORKER_SLEEPS,
              "hot-gpu-worker-pinned": WORKER_PINNED, "adapt-gpu-worker-pinned": WORKER_PINNED,
              "hot-gpu-worker-40-plane": DOWN_PLANES, "adapt-gpu-worker-40-plane": DOWN_PLANES,
              "hot-gpu-worker-even": EVEN_SPREAD, "hot-gpu-worker-in-even": EVEN_SPREAD, "adapt-gpu-worker-even": EVEN_SPREAD}
"""The environment of the configurations that need one (the others run in the script's)."""
MIB = 1024 * 1024
EVAL = re.compile(r"eval time =\s*([\d.]+) ms /\s*(\d+) (?:tokens|runs)")
PROMPT_PASS_TOKENS = 512
"""With --ubatch 512 each pass of llama-perplexity (-c 512) is one ubatch of 512 tokens. Its first pass is counted in the
prompt-eval line but not timed: it needs more outputs than the warm-up reserved, and libllama's synchronisation before
growing the output buffer books the pass's tokens and restarts the timer (llama_context::output_reserve); the compute
after it is booked to no step. So a run needs two chunks or more, and the first pass's tokens are taken off."""
PPL = re.compile(r"Final estimate: PPL = ([\d.]+)")
WORKERLESS = re.compile(r"--moe-cold-worker: (\d+) split layers do without the worker")
"""The split layers that expect too few cold selections for the worker (0029's threshold)."""


def placement_args(config: str, budget_mib: int, n_cpu_layers: int, profile: Path, replay: Path,
                   ranking: Path | None = None) -> tuple[str, list[str], dict]:
    """(variant, arguments, environment) of a configuration at a budget; `profile` is a trace of other text, `replay`
    the replayed one, `ranking` a predictor's ranking of the replayed tokens (scripts/make-bench-traces.py --predictions)
    for the PREDICTED configurations; the oracle prefetches with the replayed routing itself (a perfect predictor)."""
    hot = ["--cpu-moe", "--moe-hot-mib", str(budget_mib)]

    def static_gpu(trace: Path, cold: str = "gpu", workers: int = 0) -> list[str]:
        """With --moe-cold gpu the worker's threads too: since 0032 the fork starts a worker by default (auto)."""
        return hot + ["--moe-hot-profile", str(trace), "--moe-cold", cold, *(["--moe-cold-worker", str(workers)] if cold == "gpu" else []),
                      "-lm", "none"]

    hot_gpu = static_gpu(profile)
    hot_hybrid = static_gpu(profile, "hybrid")
    adapt_rule = ["--moe-hot-adapt", "32", "--moe-hot-adapt-ratio", "4"]
    adapt_profile = hot_gpu + adapt_rule

    def prefetch(trace: Path | None, slots: int = 1) -> list[str]:
        """--moe-prefetch: the ranking replayed from `trace`, or without one the next layer's router's (0025)."""
        return ["--moe-prefetch", str(slots)] + (["--moe-prefetch-route", f"trace:{trace}"] if trace else [])

    def worker(threads: int, share: str = "0.5", trace: Path = profile) -> list[str]:
        """hot-gpu with --moe-cold-worker: `threads` CPU threads compute `share` of each token's cold experts while the GPU reads the
        rest; the hot set from `trace` (the profile, or the replayed text for the in-sample bound)."""
        return static_gpu(trace, workers=threads) + ["--moe-cold-cpu-share", share]
    variant, args = {
        "ncmoe": ("base", ["-ncmoe", str(n_cpu_layers)]),
        "lru": ("base", ["--cpu-moe", "--moe-cache-mib", str(budget_mib)]),
        "lru-pinned": ("base", ["--cpu-moe", "--moe-cache-mib", str(budget_mib), "-lm", "none"]),
        "hot-cpu": ("fork", hot + ["--moe-hot-profile", str(profile)]),
        "hot-cpu-overlap": ("fork", hot + ["--moe-hot-profile", str(profile)]),
        "hot-hybrid": ("fork", hot_hybrid),
        "hot-hybrid-30": ("fork", hot_hybrid + ["--moe-cold-cpu-share", "0.3"]),
        "hot-hybrid-70": ("fork", hot_hybrid + ["--moe-cold-cpu-share", "0.7"]),
        "hot-gpu": ("fork", hot_gpu),
        "hot-gpu-2p": ("fork", hot_gpu),
        "hot-gpu-in": ("fork", static_gpu(replay)),
        "adapt-gpu": ("fork", hot + ["--moe-hot-adapt", "8", "--moe-cold", "gpu", "--moe-cold-worker", "0", "-lm", "none"]),
        "adapt-gpu-profile": ("fork", adapt_profile + ["--moe-hot-adapt-noise", "0"]),
        "adapt-gpu-m4": ("fork", adapt_profile + ["--moe-hot-adapt-noise", "0", "--moe-hot-adapt-margin", "4"]),
        "adapt-gpu-noise": ("fork", adapt_profile),
        "adapt-gpu-noise2": ("fork", adapt_profile + ["--moe-hot-adapt-noise", "2"]),
        "adapt-hybrid": ("fork", hot_hybrid + adapt_rule),
        "hot-gpu-top6": ("fork", hot_gpu + ["--moe-cold-top", "6"]),
        "hot-gpu-top4": ("fork", hot_gpu + ["--moe-cold-top", "4"]),
        "adapt-gpu-top6": ("fork", adapt_profile + ["--moe-cold-top", "6"]),
        "hot-gpu-counted": ("fork", hot_gpu + ["--moe-hot-stats"]),
        "hot-gpu-counted-wait": ("fork", hot_gpu + ["--moe-hot-stats"]),
        "hot-gpu-counted-copy": ("fork", hot_gpu + ["--moe-hot-stats"]),
        "hot-gpu-nographs": ("fork", hot_gpu),
        "hot-gpu-counted-nographs": ("fork", hot_gpu + ["--moe-hot-stats"]),
        "hot-gpu-prefetch": ("fork", hot_gpu + prefetch(ranking)),
        "adapt-gpu-prefetch": ("fork", adapt_profile + prefetch(ranking)),
        "hot-gpu-prefetch-oracle": ("fork", hot_gpu + prefetch(replay)),
        "adapt-gpu-prefetch-oracle": ("fork", adapt_profile + prefetch(replay)),
        "hot-gpu-prefetch2-oracle": ("fork", hot_gpu + prefetch(replay, 2)),
        "hot-gpu-prefetch-oracle-early": ("fork", hot_gpu + prefetch(replay)),
        "hot-gpu-prefetch2-oracle-early": ("fork", hot_gpu + prefetch(replay, 2)),
        "hot-gpu-worker": ("fork", worker(8)),
        "hot-gpu-worker-0": ("fork", worker(8, "0")),
        "hot-gpu-worker-30": ("fork", worker(8, "0.3")),
        "hot-gpu-worker-40": ("fork", worker(8, "0.4")),
        "hot-gpu-worker-60": ("fork", worker(8, "0.6")),
        "hot-gpu-worker-70": ("fork", worker(8, "0.7")),
        "hot-gpu-worker-100": ("fork", worker(8, "1")),
        "hot-gpu-worker-auto": ("fork", worker(8, "auto")),
        "adapt-gpu-worker-auto": ("fork", worker(8, "auto") + adapt_rule),
        "adapt-gpu-worker-inplace": ("fork", worker(8) + adapt_rule),
        "adapt-gpu-worker-30": ("fork", worker(8, "0.3") + adapt_rule),
        "adapt-gpu-worker-40": ("fork", worker(8, "0.4") + adapt_rule),
        "hot-gpu-worker-40-plane": ("fork", worker(8, "0.4")),
        "adapt-gpu-worker-40-plane": ("fork", worker(8, "0.4") + adapt_rule),
        "hot-gpu-worker-t4": ("fork", worker(4)),
        "adapt-gpu-worker-t4": ("fork", worker(4) + adapt_rule),
        "adapt-gpu-worker-t4-auto": ("fork", worker(4, "auto") + adapt_rule),
        "hot-gpu-worker-cput4": ("fork", worker(8) + ["-t", "4"]),
        "adapt-gpu-worker-cput4": ("fork", worker(8) + adapt_rule + ["-t", "4"]),
        "hot-gpu-worker-sleep": ("fork", worker(8)),
        "adapt-gpu-worker-sleep": ("fork", worker(8) + adapt_rule),
        "hot-gpu-worker-pinned": ("fork", worker(8)),
        "adapt-gpu-worker-pinned": ("fork", worker(8) + adapt_rule),
        "hot-gpu-worker-t12": ("fork", worker(12)),
        "hot-gpu-worker-all": ("fork", worker(8)),
        "adapt-gpu-worker": ("fork", worker(8) + adapt_rule),
        "hot-gpu-worker-4k": ("fork", worker(8)),
        "adapt-gpu-worker-4k": ("fork", worker(8) + adapt_rule),
        "adapt-gpu-worker-noise1": ("fork", worker(8) + adapt_rule + ["--moe-hot-adapt-noise", "1"]),
        "adapt-gpu-worker-ratio2": ("fork", worker(8) + adapt_rule[:2] + ["--moe-hot-adapt-ratio", "2", "--moe-hot-adapt-noise", "1.5"]),
        "adapt-gpu-worker-noise2": ("fork", worker(8) + adapt_rule + ["--moe-hot-adapt-noise", "2"]),
        "adapt-gpu-worker-decay70": ("fork", worker(8) + adapt_rule + ["--moe-hot-adapt-decay", "0.7"]),
        "adapt-gpu-worker-40-noise1": ("fork", worker(8, "0.4") + adapt_rule + ["--moe-hot-adapt-noise", "1"]),
        "adapt-gpu-worker-inline": ("fork", worker(8) + adapt_rule),
        "adapt-gpu-worker-noise1-inline": ("fork", worker(8) + adapt_rule + ["--moe-hot-adapt-noise", "1"]),
        "adapt-gpu-worker-follow": ("fork", worker(8) + adapt_rule),
        "adapt-gpu-worker-noise1-follow": ("fork", worker(8) + adapt_rule + ["--moe-hot-adapt-noise", "1"]),
        "hot-gpu-worker-in": ("fork", worker(8, trace=replay)),
        "hot-gpu-worker-even": ("fork", worker(8)),
        "hot-gpu-worker-in-even": ("fork", worker(8, trace=replay)),
        "adapt-gpu-worker-even": ("fork", worker(8) + adapt_rule),
        "hot-gpu-worker-in-all": ("fork", worker(8, trace=replay)),
        "hot-gpu-worker-in-inplace": ("fork", worker(8, trace=replay)),
        "hot-gpu-worker-defer": ("fork", worker(8)),
        "hot-gpu-worker-defer-100": ("fork", worker(8, "1")),
        "adapt-gpu-worker-defer": ("fork", worker(8) + adapt_rule),
        "hot-gpu-worker-l1": ("fork", worker(8)),
        "hot-gpu-worker-l2": ("fork", worker(8)),
        "hot-gpu-worker-whole": ("fork", worker(8)),
        "adapt-gpu-worker-whole": ("fork", worker(8) + adapt_rule),
        "hot-gpu-4k": ("fork", hot_gpu),
        "hot-gpu-inplace": ("fork", hot_gpu),
        "hot-gpu-prefetch-router": ("fork", hot_gpu + prefetch(None)),
        "hot-gpu-prefetch2-router": ("fork", hot_gpu + prefetch(None, 2)),
        "adapt-gpu-prefetch-router": ("fork", adapt_profile + prefetch(None)),
        "all-gpu": ("base", []),
        "cpu-moe": ("base", ["--cpu-moe"]),
        "all-hot": ("fork", hot),
        "all-hot-gpu": ("fork", hot_gpu),
    }[config]
    return variant, args, {**(SMALL_PAGES if variant == "base" else {}), **CONFIG_ENV.get(config, {})}


def static_hits(layout: hot_experts.ExpertLayout, routes: dict, budgets: list[int], budget_of, chunks: int, n_ctx: int = 512) -> dict:
    """For meta.json: per routing, the hit rate of the static sets (hot-gpu: the profile's, hot-gpu-in: the replayed
    trace's own) at each budget over the timed tokens of the replay, and the selections a token; report-placements.py
    draws decode time against the misses with them. llama-perplexity times as decode the second half of each chunk of
    `n_ctx` (the first half runs without a read-back between tokens and counts as prompt processing)."""
    hits, per_token = {}, {}
    for name, (replay, profile, _) in routes.items():
        trace = moe_trace.read_trace(replay)
        routed = moe_trace.routed_tokens(trace)
        timed = [moe_trace.take_tokens(routed, c * n_ctx + n_ctx // 2, n_ctx - n_ctx // 2) for c in range(chunks)]
        decoded = sum(moe_trace.selection_counts(t) for t in timed)
        sets = {"hot-gpu": moe_trace.selection_counts(moe_trace.read_trace(profile)), "hot-gpu-in": moe_trace.selection_counts(trace)}
        hits[name] = {config: {str(pct): round(hot_experts.static_hit_rate(counts, decoded, hot_experts.hot_counts(layout, budget_of(pct), counts)), 4)
                               for pct in budgets} for config, counts in sets.items()}
        per_token[name] = round(int(decoded.sum()) / max(sum(t.n_tokens for t in timed), 1), 2)
    return {"static_hit": hits, "selections_per_token": per_token}


def parse_run(text: str, untimed_tokens: int = 0) -> dict:
    """A run's results from its log. `untimed_tokens`: tokens its eval-time line counts but did not time, taken off
    (prompt processing: llama-perplexity's first pass, see PROMPT_PASS_TOKENS); no tokens/s where none are left."""
    evals = [(float(ms), int(n)) for ms, n in EVAL.findall(text)]
    res: dict = {}
    if evals:
        ms, n = max(evals, key=lambda e: e[1])
        n -= untimed_tokens
        res.update(tokens=n, tokens_per_s=round(1000.0 * n / ms, 2) if ms > 0 and n > 0 else None,
                   steps=sum(count for _, count in evals))  # the prompt's and the eval's ubatches: with -b 1 all one token each
    if m := PPL.search(text):
        res["ppl"] = float(m.group(1))
    if (reused := parse_graphs_reused(text)) is not None:
        res["graphs_reused"] = reused
    if m := WORKERLESS.search(text):
        res["worker_layers_without"] = int(m.group(1))
    with suppress(ParseError):  # the adaptive runs whose worker's layers follow the hot set (0041, LLAMA_MOE_WORKER_FOLLOW=1)
        follow = parse_moe_worker_follow(text)
        res.update(worker_layers_at_end=follow.layers_at_end, worker_layer_changes=follow.changes)
    with suppress(ParseError):  # only the adaptive runs print the line
        res.update(asdict(parse_moe_adapt(text)))
    with suppress(ParseError):  # the fork's runs that count the selections (--stats, adaptive)
        cpu = parse_moe_cpu(text)
        res.update(cpu_ms_per_token=round(cpu.ms / cpu.tokens, 4) if cpu.tokens else None, cpu_mib=cpu.cold_mib, cpu_gbs=cpu.gbs)
    with suppress(ParseError):  # the runs whose CPU worker computed experts
        work = parse_moe_worker(text)
        res.update(worker_experts=work.experts, worker_in_part=work.in_part, worker_jobs=work.jobs, worker_gbs=work.gbs,
                   worker_us_per_job=work.us_per_job,
                   worker_phase_us=work.phase_us, worker_wait_us=work.wait_us,
                   worker_recv_waited_pct=work.recv_waited_pct, worker_recv_wait_us=work.recv_wait_us_per_job)
    with suppress(ParseError):  # the runs whose worker's shares move (--moe-cold-cpu-share auto)
        share = parse_moe_worker_share(text)
        res.update(worker_share_low=share.low, worker_share_high=share.high, worker_share_mean=share.mean, worker_share_moves=share.moves)
    with suppress(ParseError):  # the counted runs with --moe-cold-top
        top = parse_moe_cold_top(text)
        res["skipped_pct"] = round(100 * top.skipped / top.selections, 2) if top.selections else None
    return res


def cuda_pdl(env: dict[str, str]) -> bool:
    """Whether the CUDA backend launches its kernels with programmatic dependent launch (sm_90 and newer): unless
    GGML_CUDA_PDL reads as 0 the way ggml-cuda reads it (atoi: a value without leading digits is 0 too)."""
    value = env.get("GGML_CUDA_PDL")
    digits = re.match(r"\s*[+-]?\d+", value) if value is not None else None
    return value is None or (digits is not None and int(digits.group()) != 0)


def write_meta(out: Path, meta: dict) -> None:
    """OUT/meta.json: meta, joined with the meta.json of the runs already in OUT/runs.jsonl (another call's routings or budgets),
    which stays as it was where their settings differ."""
    path = out / "meta.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    try:
        merge_meta(merged, meta, str(out))
    except ValueError as e:
        raise ValueError(f"{e}; or pass another --out") from None
    path.write_text(json.dumps(merged, indent=1) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--text", type=Path, required=True)
    p.add_argument("--route", action="append", required=True, metavar="NAME=REPLAY:PROFILE[:RANKING]",
                   help="a routing: the trace replayed, a trace of other text for the static profile and, for the prefetch of "
                        "predicted experts, a predictor's ranking of the replayed tokens")
    p.add_argument("--fork", type=Path, default=Path("dist/cuda-sm90/bin"))
    p.add_argument("--base", type=Path, default=Path("dist/baseline-cuda-sm90/bin"))
    p.add_argument("--budgets", default="25,50,75", help="percent of the model's expert bytes")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--refs", default="all-gpu,cpu-moe,all-hot", help="reference runs, once per routing: " + ", ".join(REFERENCES))
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--chunks", type=int, default=2)
    p.add_argument("--ubatch", type=int, default=1, choices=(1, PROMPT_PASS_TOKENS),
                   help="tokens a step: 1 measures decode, 512 prompt processing (pp512; needs --chunks 2 or more)")
    p.add_argument("--stats", action="store_true",
                   help="the fork's runs count the selections (--moe-hot-stats, one read-back a step) and report the time and rate "
                        "of the CPU's part")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--first-round", type=int, default=0, help="number of the first round (to continue a run in another call)")
    p.add_argument("--timeout", type=int, default=240)
    p.add_argument("--timeline", type=Path, metavar="LIB",
                   help="a CUPTI injection library built from scripts/gpu-timeline.c: each run's kernels and copies on the GPU "
                        "are recorded and summed up a step (builder/report/gpu_timeline.py) into its row as `timeline`; the "
                        "recording slows a run down, so compare such runs with each other")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    for option, names, known in (("--configs", args.configs, CONFIGS), ("--refs", args.refs, REFERENCES)):
        unknown = [name for name in names.split(",") if name and name not in known]
        if unknown:
            sys.exit(f"error: {option} {names}: no configuration named {', '.join(unknown)}; pass some of: {', '.join(known)}")
    if args.ubatch > 1 and args.chunks < 2:
        sys.exit(f"error: --ubatch {args.ubatch} with --chunks {args.chunks}: llama-perplexity times no prompt pass of a "
                 "single chunk (its first pass is never timed); pass --chunks 2 or more")

    try:
        layout = hot_experts.read_moe_layout(args.model)
    except ValueError as e:
        sys.exit(f"error: {e}")
    expert_bytes, n_layer = layout.total_bytes, len(layout.expert_bytes)
    layer_bytes = expert_bytes / n_layer
    routes = {}
    for spec in args.route:
        name, _, files = spec.partition("=")
        replay, _, rest = files.partition(":")
        profile, _, ranking = rest.partition(":")
        routes[name] = (Path(replay), Path(profile or replay), Path(ranking) if ranking else None)

    def budget_of(pct: int) -> int:
        return int(expert_bytes * pct / 100 / MIB)

    cells = []
    for name, (replay, profile, ranking) in routes.items():
        configs = [c for c in args.configs.split(",") if ranking is not None or c not in PREDICTED]
        if len(configs) < len(args.configs.split(",")):
            print(f"{name}: no ranking trace (--route {name}=REPLAY:PROFILE:RANKING), so no {', '.join(PREDICTED)}", flush=True)
        for pct in (int(b) for b in args.budgets.split(",")):
            budget = budget_of(pct)
            n_cpu = n_layer - int(budget * MIB // layer_bytes)
            cells.append([(name, pct, budget, config, *placement_args(config, budget, n_cpu, profile, replay, ranking))
                          for config in configs])
        refs = []
        for ref in filter(None, args.refs.split(",")):
            every_expert_hot = ref in ALL_HOT
            budget = int(expert_bytes / MIB) + 64 if every_expert_hot else 0
            refs.append((name, 100 if every_expert_hot else 0, budget, ref, *placement_args(ref, budget, 0, profile, replay)))
        cells.append(refs)

    args.out.mkdir(parents=True, exist_ok=True)
    distinct = {name: moe_trace.distinct_experts_per_window(moe_trace.read_trace(replay)) for name, (replay, *_) in routes.items()}
    meta = {"model": str(args.model), "expert_mib": round(expert_bytes / MIB, 1), "n_layer": n_layer, "stats": args.stats,
            "threads": args.threads, "chunks": args.chunks, "ubatch": args.ubatch, "pdl": cuda_pdl(os.environ), "routes": {k: [str(p) for p in v if p] for k, v in routes.items()},
            "distinct_per_32": {k: round(sum(d) / len(d), 2) for k, d in distinct.items()},
            **static_hits(layout, routes, [int(b) for b in args.budgets.split(",")], budget_of, args.chunks)}
    try:
        write_meta(args.out, meta)
    except ValueError as e:
        sys.exit(f"error: {e}")
    with open(args.out / "runs.jsonl", "a") as runs:
        for rnd in range(args.first_round, args.first_round + args.rounds):
            for name, pct, budget, config, variant, extra, env in round_order(cells, rnd):
                binary = (args.fork if variant == "fork" else args.base) / "llama-perplexity"
                cmd = [str(binary), "-m", str(args.model), "-f", str(args.text), "-c", "512", "--chunks", str(args.chunks),
                       "-b", str(args.ubatch), "-ub", str(args.ubatch), "--perf", "-lv", "4", "-t", str(args.threads), "-fit", "off", "-ngl", "99",
                       "--moe-route", f"trace:{routes[name][0]}", *extra, *(["--moe-hot-stats"] if args.stats and variant == "fork" else [])]
                run_env = {**os.environ, **env}
                timeline = args.out / f"timeline-{name}-{pct}-{config}-{rnd}.txt"
                if args.timeline:
                    run_env.update(CUDA_INJECTION64_PATH=str(args.timeline.resolve()), GPU_TIMELINE_OUT=str(timeline))
                start = time.monotonic()
                finished = huge_pages.run(cmd, args.timeout, env=run_env)
                text, rc = finished.output, finished.rc
                result = parse_run(text, PROMPT_PASS_TOKENS if args.ubatch > 1 else 0)
                if args.timeline:
                    if result.get("steps"):
                        try:
                            result["timeline"] = gpu_timeline.summarize(timeline, result["steps"])
                        except (UsageError, OSError) as e:
                            result["timeline_error"] = str(e)
                    timeline.unlink(missing_ok=True)  # tens of MB a run, also where the run failed
                if rc == 0 and "ppl" not in result:
                    rc = "no result"  # llama-perplexity exits 0 when the text is too short
                row = {"round": rnd, "route": name, "budget_pct": pct, "budget_mib": budget, "config": config,
                       "variant": variant, "env": env, "rc": rc, "seconds": round(time.monotonic() - start, 1), "cmd": cmd,
                       "anon_huge_mib": finished.anon_huge_mib, **result}
                if rc != 0:
                    row["tail"] = text[-1500:]
                runs.write(json.dumps(row) + "\n")
                runs.flush()
                print(f"{rnd} {name:8} {pct:3}% {config:9} rc={rc} {row.get('tokens_per_s')} t/s ppl={row.get('ppl')} "
                      f"hit={row.get('hit_rate')} cpu={row.get('cpu_ms_per_token')} ms/token {row.get('cpu_gbs')} GB/s "
                      f"worker={row.get('worker_us_per_job')} us/job {row.get('worker_gbs')} GB/s {row['seconds']}s", flush=True)
    return 0


def round_order(cells: list[list[tuple]], rnd: int) -> list[tuple]:
    """The runs of round `rnd`: cell by cell (a routing and budget, or a routing's references), each cell's
    configurations rotated by the round, so that none always runs first (after another's load, on a machine whose
    speed drifts between runs)."""
    return [run for cell in cells if cell for run in cell[rnd % len(cell):] + cell[:rnd % len(cell)]]


if __name__ == "__main__":
    sys.exit(main())
