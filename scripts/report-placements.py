#!/usr/bin/env python3
"""Summarise a scripts/bench-placements.py run: DIR/report.json (the source of truth), DIR/report.md
rendered from it, and DIR/placements.png (tokens/s vs budget, one line per configuration, one panel
per routing; the reference runs as horizontal lines).

    scripts/report-placements.py DIR [--title T] [--note TEXT]... [--from STAGE_DIR]... [--against OTHER_DIR]

With --from, DIR gets the runs of several bench-placements runs of one session (e.g. the device stages' folders)
and their meta.json merged first: the settings (model, threads, ...) must agree, the per-routing tables are joined.
With --against, the report ends with DIR's cells beside OTHER_DIR's, another run of the same configurations (e.g. the
device's FORK=fork-NNNN placements, a prefix of the series on the same machine): tokens/s ÷ the other's, the same PPL
or not, the worker's rate and the GPU's waits on each side, and the kernels of cells both traced (--timeline).

Per routing and budget it gives each configuration's median tokens/s over the rounds with its
spread (min-max), the hit rate and the swaps per token of the adaptive hot set, the CPU worker's µs a job and the GPU's
wait for it (what differs most between hosts), the fork's best configuration against
the better of upstream's placements at the same VRAM and against issue 10's bar (under uniform routing 1.0x that
upstream placement, else 1.5x it or 0.9x all on the GPU where that is lower), and the best adaptive configuration against
the static sets (issue 10: within 5 % of the in-sample one, never below the one from other text). Where meta.json has
the static sets' hit rates (bench-placements.py records them), a least-squares line through the static cells gives the
decode time a token with no miss and the time a missed selection costs, and each adaptive cell's time beyond that line
at its own hit rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.report import gpu_timeline  # noqa: E402
from builder.report.meta import merge_meta  # noqa: E402

UPSTREAM = ("ncmoe", "lru", "lru-pinned")
WORKER = ("hot-gpu-worker", "hot-gpu-worker-0", "hot-gpu-worker-30", "hot-gpu-worker-40", "hot-gpu-worker-60", "hot-gpu-worker-70", "hot-gpu-worker-100",
          "hot-gpu-worker-t4", "hot-gpu-worker-t12", "hot-gpu-worker-all", "adapt-gpu-worker", "hot-gpu-worker-4k", "adapt-gpu-worker-4k",
          "adapt-gpu-worker-noise1", "adapt-gpu-worker-ratio2", "adapt-gpu-worker-noise2", "hot-gpu-worker-l1", "hot-gpu-worker-l2", "hot-gpu-worker-whole", "adapt-gpu-worker-whole",
          "adapt-gpu-worker-40-noise1", "adapt-gpu-worker-inline", "adapt-gpu-worker-noise1-inline", "adapt-gpu-worker-follow",
          "adapt-gpu-worker-noise1-follow", "hot-gpu-worker-auto", "adapt-gpu-worker-auto", "adapt-gpu-worker-inplace",
          "adapt-gpu-worker-staged", "adapt-gpu-worker-30", "adapt-gpu-worker-40", "hot-gpu-worker-cput4", "adapt-gpu-worker-cput4",
          "hot-gpu-worker-sleep", "adapt-gpu-worker-sleep", "hot-gpu-worker-pinned", "adapt-gpu-worker-pinned",
          "hot-gpu-worker-40-plane", "adapt-gpu-worker-40-plane", "adapt-gpu-worker-decay70", "adapt-gpu-worker-t4",
          "adapt-gpu-worker-t4-auto", "hot-gpu-worker-even", "hot-gpu-worker-in-even", "adapt-gpu-worker-even")
"""Configurations whose CPU worker computes a share of each token's cold experts (--moe-cold-worker, 0028-0029)."""
FORK = ("hot-cpu", "hot-cpu-overlap", "hot-hybrid", "hot-hybrid-30", "hot-hybrid-70", "hot-gpu", "hot-gpu-2p", "adapt-gpu", "adapt-gpu-profile", "adapt-gpu-m4", "adapt-gpu-noise", "adapt-gpu-noise2",
        "adapt-hybrid", "hot-gpu-4k", "hot-gpu-inplace", "hot-gpu-staged", *WORKER)
LOSSY = ("hot-gpu-top6", "hot-gpu-top4", "adapt-gpu-top6", "hot-gpu-worker-defer", "hot-gpu-worker-defer-100", "adapt-gpu-worker-defer")
"""Configurations that skip cold experts (--moe-cold-top) or defer the worker's to the next layer (LLAMA_MOE_WORKER_DEFER):
compared with upstream apart from the lossless ones."""
PREFETCH = ("hot-gpu-prefetch", "adapt-gpu-prefetch", "hot-gpu-prefetch-oracle", "adapt-gpu-prefetch-oracle", "hot-gpu-prefetch2-oracle",
            "hot-gpu-prefetch-router", "hot-gpu-prefetch2-router", "adapt-gpu-prefetch-router", "hot-gpu-prefetch-oracle-early",
            "hot-gpu-prefetch2-oracle-early")
"""Configurations that prefetch, compared with upstream apart: replayed rankings (--moe-prefetch-route), a predictor's
computed elsewhere or the routing itself (the oracle, the mechanism's ceiling), and the next layer's router's ranking
(0025, `-router`). The bench replays its routing, so the bench model's own router predicts none of it: the `-router`
rows there give what the mechanism costs when its predictions miss, not what the router's ranking gains (that is measured
on the trained model, whose router routes: device-run.sh fidelity's prefetch runs)."""
ADAPTIVE = ("adapt-gpu", "adapt-gpu-profile", "adapt-gpu-m4", "adapt-gpu-noise", "adapt-gpu-noise2", "adapt-hybrid", "adapt-gpu-worker",
            "adapt-gpu-worker-noise1", "adapt-gpu-worker-ratio2", "adapt-gpu-worker-noise2", "adapt-gpu-worker-whole", "adapt-gpu-worker-40-noise1", "adapt-gpu-worker-inline",
            "adapt-gpu-worker-noise1-inline", "adapt-gpu-worker-follow", "adapt-gpu-worker-noise1-follow", "adapt-gpu-worker-auto",
            "adapt-gpu-worker-inplace", "adapt-gpu-worker-staged", "adapt-gpu-worker-30", "adapt-gpu-worker-40",
            "adapt-gpu-worker-40-plane", "adapt-gpu-worker-decay70", "adapt-gpu-worker-t4", "adapt-gpu-worker-t4-auto",
            "adapt-gpu-worker-even")
STATIC_OTHER = ("hot-gpu", "hot-gpu-worker", "hot-gpu-worker-even")  # static sets from a profile of other text, without and with the worker
STATIC_IN = ("hot-gpu-in", "hot-gpu-worker-in", "hot-gpu-worker-in-all", "hot-gpu-worker-in-inplace", "hot-gpu-worker-in-even")  # the same from the replayed text itself (in-sample)
REFS = {"all-gpu": "all on the GPU", "cpu-moe": "all experts on the CPU", "all-hot": "fork, every expert hot",
        "all-hot-gpu": "fork, every expert hot, one pass"}
LABELS = {
    "ncmoe": "upstream -ncmoe N",
    "lru": "upstream --moe-cache-mib (mmap)",
    "lru-pinned": "upstream --moe-cache-mib -lm none",
    "hot-cpu": "fork static, cold on CPU (0003)",
    "hot-cpu-overlap": "fork static, cold on CPU while the GPU computes the hot experts (0016-0017)",
    "hot-hybrid": "fork static, cold split between the CPU and the GPU reading in place (0018)",
    "hot-hybrid-30": "fork static, cold split, the CPU's share 0.3 (0018)",
    "hot-hybrid-70": "fork static, cold split, the CPU's share 0.7 (0018)",
    "hot-gpu": "fork static, cold on GPU, one mul_mat_id a tensor (0012; 0005 before 2026-12-02)",
    "hot-gpu-2p": "fork static, cold on GPU, hot and cold parts (0005)",
    "hot-gpu-in": "fork static from the replayed text itself (in-sample, an upper bound; not among the fork's placements)",
    "hot-gpu-worker-in": "hot-gpu-worker from the replayed text itself (in-sample, an upper bound; not among the fork's placements)",
    "hot-gpu-worker-in-all": "hot-gpu-worker-in with the worker in every split layer (in-sample; not among the fork's placements)",
    "hot-gpu-worker-in-inplace": "hot-gpu-worker-in with the cold rows read in place, no shared memory reserved for staging them "
                                 "(GGML_CUDA_MOE_COLD_IN_PLACE=1; in-sample; not among the fork's placements)",
    "adapt-gpu": "fork adaptive, cold on GPU (0004+0005)",
    "adapt-gpu-profile": "fork adaptive from the profile, every 32, ratio 4 (0010)",
    "adapt-gpu-m4": "fork adaptive from the profile, every 32, ratio 4, margin 4 (0010)",
    "adapt-gpu-noise": "fork adaptive from the profile, every 32, ratio 4, lead beyond 2.5 x noise (0015)",
    "adapt-gpu-noise2": "fork adaptive as adapt-gpu-noise, lead beyond 2 x noise (the default's candidate in placement-model.py)",
    "adapt-hybrid": "fork adaptive as 0015, cold split between the CPU and the GPU (0018)",
    "hot-gpu-top6": "fork static as hot-gpu, lossy: cold experts only at a token's first 6 ranks (0020)",
    "hot-gpu-top4": "fork static as hot-gpu, lossy: cold experts only at a token's first 4 ranks (0020)",
    "adapt-gpu-top6": "fork adaptive as adapt-gpu-noise, lossy: cold experts only at a token's first 6 ranks (0020)",
    "hot-gpu-counted": "fork static as hot-gpu, the selections counted (--moe-hot-stats; not among the fork's placements)",
    "hot-gpu-counted-wait": "hot-gpu-counted, each ubatch's selections waited for (LLAMA_MOE_HOT_COUNT_WAIT=1, 0021 as first built)",
    "hot-gpu-nographs": "fork static as hot-gpu, CUDA graphs off (GGML_CUDA_DISABLE_GRAPHS; a diagnosis, not a placement)",
    "hot-gpu-counted-nographs": "hot-gpu-counted with CUDA graphs off (a diagnosis, not a placement)",
    "hot-gpu-counted-copy": "hot-gpu-counted from copies of the selected experts, as before 0022 (LLAMA_MOE_HOT_COUNT_COPY=1)",
    "hot-gpu-prefetch": "fork static as hot-gpu, one slot a layer of it prefetching a replayed predictor's best cold expert (0024)",
    "adapt-gpu-prefetch": "fork adaptive as adapt-gpu-noise, one slot a layer prefetching a replayed predictor's best cold expert (0024)",
    "hot-gpu-prefetch-oracle": "hot-gpu-prefetch with the routing itself as the prediction (the mechanism's ceiling)",
    "adapt-gpu-prefetch-oracle": "adapt-gpu-prefetch with the routing itself as the prediction (the mechanism's ceiling)",
    "hot-gpu-prefetch2-oracle": "hot-gpu-prefetch-oracle with two slots a layer",
    "hot-gpu-prefetch-oracle-early": "hot-gpu-prefetch-oracle, the copies started beside the layer before's experts "
                                     "(LLAMA_MOE_PREFETCH_EARLY=1, as before 0027)",
    "hot-gpu-prefetch2-oracle-early": "hot-gpu-prefetch2-oracle, the copies started beside the layer before's experts (as before 0027)",
    "hot-gpu-prefetch-router": "fork static as hot-gpu, one slot a layer prefetching the next layer's router's best cold expert (0025; "
                               "on replayed routing the router's predictions miss: the mechanism's cost)",
    "hot-gpu-prefetch2-router": "hot-gpu-prefetch-router with two slots a layer",
    "adapt-gpu-prefetch-router": "fork adaptive as adapt-gpu-noise, one slot a layer prefetching the next layer's router's best cold expert (0025)",
    "hot-gpu-worker": "fork static as hot-gpu, a CPU worker of 8 threads computing half of each token's cold experts (0028-0029)",
    "hot-gpu-worker-0": "hot-gpu-worker, the worker's share 0 (its two nodes a layer, no job)",
    "hot-gpu-worker-30": "hot-gpu-worker, the worker's share 0.3",
    "hot-gpu-worker-40": "hot-gpu-worker, the worker's share 0.4 (in parts of 256 rows where an expert has 2 or more: 1 of a lone "
                         "expert's 3 parts at n_ff 768; in whole experts 0 of 1, 1 of 2 and 3, 2 of 4 and 5)",
    "hot-gpu-worker-60": "hot-gpu-worker, the worker's share 0.6",
    "hot-gpu-worker-70": "hot-gpu-worker, the worker's share 0.7",
    "hot-gpu-worker-100": "hot-gpu-worker, every cold expert on the worker (the CPU's rate alone)",
    "hot-gpu-worker-t4": "hot-gpu-worker with 4 threads",
    "hot-gpu-worker-t12": "hot-gpu-worker with 12 threads",
    "hot-gpu-worker-cput4": "hot-gpu-worker, the CPU backend at 4 threads (-t 4)",
    "adapt-gpu-worker-cput4": "adapt-gpu-worker, the CPU backend at 4 threads (-t 4)",
    "hot-gpu-worker-sleep": "hot-gpu-worker, its threads asleep between decode steps (LLAMA_MOE_WORKER_POLL_US=0)",
    "adapt-gpu-worker-sleep": "adapt-gpu-worker, its threads asleep between decode steps (LLAMA_MOE_WORKER_POLL_US=0)",
    "hot-gpu-worker-pinned": "hot-gpu-worker, its threads pinned to the upper half of the CPUs, the backend's to the lower "
                             "(LLAMA_MOE_WORKER_CPUS, OMP_PLACES)",
    "adapt-gpu-worker-pinned": "adapt-gpu-worker, its threads pinned to the upper half of the CPUs, the backend's to the lower "
                               "(LLAMA_MOE_WORKER_CPUS, OMP_PLACES)",
    "hot-gpu-worker-all": "hot-gpu-worker in every split layer, also those that expect few cold selections",
    "adapt-gpu-worker": "fork adaptive as adapt-gpu-noise, with the CPU worker of hot-gpu-worker",
    "hot-gpu-worker-4k": "hot-gpu-worker with the host experts in cudaMallocHost's pages, not huge pages (as before 0031)",
    "adapt-gpu-worker-4k": "adapt-gpu-worker with the host experts in cudaMallocHost's pages, not huge pages (as before 0031)",
    "adapt-gpu-worker-noise1": "adapt-gpu-worker swapping on a lead of 1 standard deviation (--moe-hot-adapt-noise 1)",
    "adapt-gpu-worker-ratio2": "adapt-gpu-worker swapping at 2x the hot score and a lead of 1.5 standard deviations",
    "adapt-gpu-worker-noise2": "adapt-gpu-worker swapping on a lead of 2 standard deviations (--moe-hot-adapt-noise 2)",
    "adapt-gpu-worker-decay70": "adapt-gpu-worker with its counts times 0.7 after each update, not halved (--moe-hot-adapt-decay 0.7)",
    "hot-gpu-worker-l1": "hot-gpu-worker asking for the next row into L1 (0030; LLAMA_MOE_WORKER_PREFETCH=l1)",
    "hot-gpu-worker-l2": "hot-gpu-worker asking for its rows 2 KiB ahead into L2 (0034; LLAMA_MOE_WORKER_PREFETCH=l2)",
    "hot-gpu-worker-whole": "hot-gpu-worker handing the worker whole experts only, as before 0035 (LLAMA_MOE_WORKER_WHOLE=1)",
    "adapt-gpu-worker-whole": "adapt-gpu-worker handing the worker whole experts only, as before 0035 (LLAMA_MOE_WORKER_WHOLE=1)",
    "adapt-gpu-worker-40-noise1": "adapt-gpu-worker-noise1 at the worker's share 0.4",
    "adapt-gpu-worker-30": "adapt-gpu-worker at the worker's share 0.3",
    "adapt-gpu-worker-40": "adapt-gpu-worker at the worker's share 0.4",
    "hot-gpu-worker-40-plane": "hot-gpu-worker-40 reading down's first part from planes of its own (LLAMA_MOE_WORKER_DOWN_PLANE=1, 0053)",
    "adapt-gpu-worker-40-plane": "adapt-gpu-worker-40 reading down's first part from planes of its own (LLAMA_MOE_WORKER_DOWN_PLANE=1, 0053)",
    "hot-gpu-worker-defer": "lossy: hot-gpu-worker with the worker's experts joining the next layer's output (LLAMA_MOE_WORKER_DEFER=1, 0038)",
    "hot-gpu-worker-defer-100": "lossy: hot-gpu-worker-defer with every cold expert on the worker (share 1)",
    "adapt-gpu-worker-defer": "lossy: adapt-gpu-worker with the worker's experts joining the next layer's output (LLAMA_MOE_WORKER_DEFER=1)",
    "adapt-gpu-worker-inline": "adapt-gpu-worker with the swaps' copies on the layer's stream ahead of the next ubatch, as before 0037 "
                               "(LLAMA_MOE_HOT_SWAP_INLINE=1)",
    "adapt-gpu-worker-noise1-inline": "adapt-gpu-worker-noise1 with the swaps' copies on the layer's stream ahead of the next ubatch, as "
                                      "before 0037 (LLAMA_MOE_HOT_SWAP_INLINE=1)",
    "adapt-gpu-worker-follow": "adapt-gpu-worker with the worker's layers moving with the adaptive set (0041, "
                               "LLAMA_MOE_WORKER_FOLLOW=1)",
    "adapt-gpu-worker-noise1-follow": "adapt-gpu-worker-noise1 with the worker's layers moving with the adaptive set "
                                      "(LLAMA_MOE_WORKER_FOLLOW=1)",
    "hot-gpu-worker-auto": "hot-gpu-worker with each layer's share moved by the GPU's waits (--moe-cold-cpu-share auto, 0048)",
    "adapt-gpu-worker-auto": "adapt-gpu-worker with each layer's share moved by the GPU's waits (--moe-cold-cpu-share auto, 0048)",
    "adapt-gpu-worker-t4": "adapt-gpu-worker with 4 threads (a slow worker)",
    "adapt-gpu-worker-t4-auto": "adapt-gpu-worker-auto with 4 threads (a slow worker)",
    "hot-gpu-worker-even": "hot-gpu-worker with the budget spread evenly over the layers, as before 0058 (LLAMA_MOE_HOT_EVEN=1)",
    "hot-gpu-worker-in-even": "hot-gpu-worker-in with the budget spread evenly over the layers (LLAMA_MOE_HOT_EVEN=1)",
    "adapt-gpu-worker-even": "adapt-gpu-worker with the budget spread evenly over the layers (LLAMA_MOE_HOT_EVEN=1)",
    "hot-gpu-inplace": "hot-gpu with the cold experts' rows read in place by the products, where 0049 stages them by "
                       "default (GGML_CUDA_MOE_COLD_IN_PLACE=1)",
    "adapt-gpu-worker-inplace": "adapt-gpu-worker with the cold experts' rows read in place by the products, where 0049 "
                                "stages them by default (GGML_CUDA_MOE_COLD_IN_PLACE=1)",
    "hot-gpu-staged": "hot-gpu with a block's rows of a cold expert read into shared memory before the products, where "
                      "they were read in place by default (GGML_CUDA_MOE_COLD_STAGE=1, 0049 on 2026-12-06 only)",
    "adapt-gpu-worker-staged": "adapt-gpu-worker with a block's rows of a cold expert read into shared memory before the "
                               "products, where they were read in place by default (GGML_CUDA_MOE_COLD_STAGE=1, 0049 on "
                               "2026-12-06 only)",
    "hot-gpu-4k": "hot-gpu with the host experts in cudaMallocHost's pages (as before 0031): what huge pages do to the GPU's reads over the bus",
}


def summarise(runs: list[dict], timed: str = "decode") -> dict:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["route"], r["budget_pct"], r["config"])].append(r)
    cells = []
    for (route, pct, config), rows in sorted(groups.items()):
        finished = [r for r in rows if r.get("tokens_per_s") and r["rc"] == 0]
        speeds = [r["tokens_per_s"] for r in finished]
        cell = {"route": route, "budget_pct": pct, "budget_mib": rows[0]["budget_mib"], "config": config,
                "runs": len(rows), "failed": sum(r["rc"] != 0 for r in rows),
                "median": round(statistics.median(speeds), 1) if speeds else None,
                "min": min(speeds, default=None), "max": max(speeds, default=None),
                "by_round": {r["round"]: r["tokens_per_s"] for r in finished},
                "ppl": sorted({r["ppl"] for r in rows if "ppl" in r}),
                "cmd": " ".join([f"{k}={v}" for k, v in rows[0].get("env", {}).items()] + rows[0]["cmd"])}
        hits = [r["hit_rate"] for r in rows if "hit_rate" in r]
        if hits:
            cell.update(hit_rate=statistics.median(hits), mib_copied=statistics.median(r["mib_copied"] for r in rows if "mib_copied" in r))
        cpu = [r for r in rows if r.get("cpu_ms_per_token") is not None and r["rc"] == 0]
        if cpu:  # bench-placements.py --stats, or an adaptive run
            cell.update(cpu_ms_per_token=statistics.median(r["cpu_ms_per_token"] for r in cpu),
                        cpu_gbs=statistics.median(r["cpu_gbs"] for r in cpu))
        worker = [r for r in rows if r.get("worker_gbs") is not None and r["rc"] == 0]
        if worker:  # --moe-cold-worker: its rate and its time from a job's hand-over to its answer
            cell.update(worker_gbs=statistics.median(r["worker_gbs"] for r in worker),
                        worker_us_per_job=statistics.median(r["worker_us_per_job"] for r in worker))
            waited = [r["worker_recv_waited_pct"] for r in worker if r.get("worker_recv_waited_pct") is not None]
            if waited:  # 0033: the GPU's recv waited for the worker's answer in this share of the jobs
                cell["worker_recv_waited_pct"] = statistics.median(waited)
            wait_us = [r["worker_recv_wait_us"] for r in worker if r.get("worker_recv_wait_us") is not None]
            if wait_us and cell["worker_us_per_job"]:  # and this long a job, over every job: the rest of the worker's time was hidden behind the GPU's work
                cell["worker_recv_wait_us"] = statistics.median(wait_us)
                cell["worker_hidden_pct"] = round(100 * max(0.0, 1 - cell["worker_recv_wait_us"] / cell["worker_us_per_job"]), 1)
            in_part = [100 * r["worker_in_part"] / r["worker_experts"] for r in worker if r.get("worker_in_part") is not None and r["worker_experts"]]
            if in_part:  # 0035: the share of the worker's experts that it computed in part, the GPU the rest
                cell["worker_in_part_pct"] = round(statistics.median(in_part), 1)
        moved = [r for r in rows if r.get("worker_share_mean") is not None and r["rc"] == 0]
        if moved:  # 0048: the layers' shares at the end, as the GPU's waits moved them
            cell.update(worker_share_low=min(r["worker_share_low"] for r in moved), worker_share_high=max(r["worker_share_high"] for r in moved),
                        worker_share_mean=statistics.median(r["worker_share_mean"] for r in moved))
        followed = [r for r in rows if r.get("worker_layers_at_end") is not None and r["rc"] == 0]
        if followed:  # 0041: the layers the worker took part in at the end, as the adaptive set moved them, and the moves
            cell.update(worker_layers_at_end=statistics.median(r["worker_layers_at_end"] for r in followed),
                        worker_layer_changes=statistics.median(r["worker_layer_changes"] for r in followed))
        huge = [r["anon_huge_mib"] for r in rows if r.get("anon_huge_mib") is not None and r["rc"] == 0]
        if huge:  # the fewest MiB in transparent huge pages that any of its runs was seen to hold (bench-placements.py)
            cell["anon_huge_mib"] = min(huge)
        skipped = [r["skipped_pct"] for r in rows if r.get("skipped_pct") is not None and r["rc"] == 0]
        if skipped:  # --moe-cold-top, counted
            cell["skipped_pct"] = statistics.median(skipped)
        reused = [r["graphs_reused"] for r in rows if "graphs_reused" in r and r["rc"] == 0]
        if reused:  # llama.cpp's graph reuse: a step that rebuilds its graph pays for it on the host
            cell["graphs_reused"] = min(reused)
        # over every routed token; runs before 2026-12-03 lack the count and divide by the timed tokens (half of them in
        # llama-perplexity, whose first half of a chunk is not timed as decode), which doubled their swaps a token
        swaps = [r["swaps"] / n for r in rows if "swaps" in r and (n := r.get("routed_tokens", r.get("tokens")))]
        if swaps:
            cell["swaps_per_token"] = round(statistics.median(swaps), 2)
        cells.append(cell)
    return {"cells": cells, "comparisons": compare(cells, FORK, timed), "lossy": compare(cells, LOSSY, timed),
            "prefetch": compare(cells, PREFETCH, timed), "adaptive": adaptive_against_static(cells),
            "pairs": pairs(cells)}


def compare(cells: list[dict], configs: tuple[str, ...], timed: str = "decode") -> list[dict]:
    """Per routing and budget where upstream ran too: the best of `configs` against the better of upstream's placements,
    and against issue 10's bar for what the runs timed (`measured`)."""
    by = {(c["route"], c["budget_pct"], c["config"]): c["median"] for c in cells}
    res = []
    for route, pct in sorted({(c["route"], c["budget_pct"]) for c in cells if c["config"] in configs} &
                             {(c["route"], c["budget_pct"]) for c in cells if c["config"] in UPSTREAM}):
        upstream = {k: by.get((route, pct, k)) for k in UPSTREAM if by.get((route, pct, k))}
        fork = {k: by.get((route, pct, k)) for k in configs if by.get((route, pct, k))}
        # a configuration run at this cell without a result (every run failed) leaves the comparison open
        missing = [k for k in UPSTREAM + configs if (route, pct, k) in by and k not in upstream and k not in fork]
        if missing:
            res.append({"route": route, "budget_pct": pct, "missing": missing})
            continue
        best_up = max(upstream, key=upstream.get)
        best_fork = max(fork, key=fork.get)
        all_gpu = by.get((route, 0, "all-gpu"))
        bar = issue_bar(route, upstream[best_up], all_gpu, timed)
        res.append({"route": route, "budget_pct": pct, "best_upstream": best_up, "upstream": upstream[best_up],
                    "best_fork": best_fork, "fork_configs": len(fork), "fork": fork[best_fork],
                    "ratio": round(fork[best_fork] / upstream[best_up], 2),
                    "of_all_gpu": round(fork[best_fork] / all_gpu, 2) if all_gpu else None,
                    "bar": bar, "of_bar": round(fork[best_fork] / bar, 3)})
    return res


def issue_bar(route: str, upstream: float, all_gpu: float | None, timed: str = "decode") -> float:
    """Issue 10's acceptance bar for the fork's tokens/s: in prompt processing, and in decode under uniform routing, 1.0x
    the better upstream placement; else 1.5x it or 0.9x all on the GPU where that is lower (without an all-GPU run, 1.5x)."""
    if timed != "decode" or route.startswith("uniform"):
        return upstream
    return round(min(1.5 * upstream, 0.9 * all_gpu) if all_gpu else 1.5 * upstream, 1)


def adaptive_against_static(cells: list[dict]) -> list[dict]:
    """Per routing and budget with an adaptive run: the best adaptive configuration's median ÷ the best static set's from a
    profile of other text and ÷ the best in-sample static set's (each with or without the worker), where those ran."""
    by = {(c["route"], c["budget_pct"], c["config"]): c["median"] for c in cells if c["median"]}
    res = []
    for route, pct in sorted({(c["route"], c["budget_pct"]) for c in cells if c["config"] in ADAPTIVE}):
        adaptive = {k: by[(route, pct, k)] for k in ADAPTIVE if (route, pct, k) in by}
        if not adaptive:
            continue
        best = max(adaptive, key=adaptive.get)
        row = {"route": route, "budget_pct": pct, "adaptive": best, "tokens_per_s": adaptive[best]}
        for key, configs in (("static_other", STATIC_OTHER), ("static_in", STATIC_IN)):
            static = {k: by[(route, pct, k)] for k in configs if (route, pct, k) in by}
            if static:
                row[key] = max(static, key=static.get)
                row[f"of_{key}"] = round(adaptive[best] / static[row[key]], 3)
        res.append(row)
    return res


PAIRS = {
    ("hot-cpu-overlap", "hot-cpu"): "Cold experts on the CPU while the GPU computes the hot ones (0016-0017), against one after the "
                                    "other (the same nodes in another order: the same PPL)",
    ("hot-hybrid", "hot-gpu"): "Cold experts split between the CPU and the GPU (0018), against all read by the GPU (the CPU's part "
                               "computes in the CPU's numerics)",
    ("hot-hybrid-30", "hot-gpu"): "The split with the CPU's share at 0.3, against all read by the GPU",
    ("hot-hybrid-70", "hot-gpu"): "The split with the CPU's share at 0.7, against all read by the GPU",
    ("adapt-hybrid", "adapt-gpu-noise"): "Adaptive, cold experts split between the CPU and the GPU (0018), against all read by the GPU",
    ("hot-gpu-top6", "hot-gpu"): "Lossy: cold experts only at the first 6 ranks (0020), against every rank (the PPL differs by design)",
    ("hot-gpu-top4", "hot-gpu"): "Lossy: cold experts only at the first 4 ranks (0020), against every rank",
    ("adapt-gpu-top6", "adapt-gpu-noise"): "Lossy, adaptive: cold experts only at the first 6 ranks (0020), against every rank",
    ("hot-gpu-counted", "hot-gpu"): "Counting the selections (0007's read-back after every ubatch, which --moe-hot-adapt and --metrics "
                                    "take), against not: what counting costs (the same PPL)",
    ("hot-gpu-counted", "hot-gpu-counted-wait"): "Counting without a wait (the read counted at the next ubatch or synchronisation) "
                                                 "against waiting for each ubatch's read (the same counts and PPL)",
    ("hot-gpu-counted", "hot-gpu-counted-copy"): "Counting in the down experts' node (0022) against copying the selected experts "
                                                 "into the selections (the same counts and PPL)",
    ("hot-gpu-nographs", "hot-gpu"): "CUDA graphs off against on (static set, uncounted): what the graphs save a decode step",
    ("hot-gpu-counted-nographs", "hot-gpu-counted"): "CUDA graphs off against on, the selections counted: near 1.0 where counting "
                                                     "already runs without the graphs",
    ("hot-gpu-prefetch", "hot-gpu"): "One slot a layer prefetching a replayed predictor's best cold expert (0023-0024), against the "
                                     "static set those slots belonged to (bit copies: the same PPL)",
    ("hot-gpu-prefetch-oracle", "hot-gpu"): "One slot a layer prefetching the routing's own first cold expert (the ceiling), against "
                                            "the static set (the same PPL)",
    ("adapt-gpu-prefetch", "adapt-gpu-noise"): "Adaptive with one slot a layer prefetching a replayed predictor's best cold expert, "
                                               "against adaptive (the same PPL)",
    ("adapt-gpu-prefetch-oracle", "adapt-gpu-noise"): "Adaptive with the routing's own first cold expert prefetched (the ceiling), "
                                                      "against adaptive (the same PPL)",
    ("hot-gpu-prefetch2-oracle", "hot-gpu"): "Two slots a layer prefetching the routing's own first cold experts (the ceiling), "
                                             "against the static set (the same PPL)",
    ("hot-gpu-prefetch-router", "hot-gpu"): "One slot a layer prefetching the next layer's router's best cold expert (0025), "
                                            "against the static set (the same PPL)",
    ("hot-gpu-prefetch2-router", "hot-gpu"): "Two slots a layer prefetching the next layer's router's best cold experts (0025), "
                                             "against the static set (the same PPL)",
    ("adapt-gpu-prefetch-router", "adapt-gpu-noise"): "Adaptive with one slot a layer prefetching the next layer's router's best "
                                                      "cold expert (0025), against adaptive (the same PPL)",
    ("hot-gpu-prefetch-oracle", "hot-gpu-prefetch-oracle-early"): "The oracle's copies started once the layer before's experts are "
                                                                  "summed (0027), against beside them (the same PPL)",
    ("hot-gpu-prefetch2-oracle", "hot-gpu-prefetch2-oracle-early"): "Two slots' copies started once the layer before's experts are "
                                                                    "summed (0027), against beside them (the same PPL)",
    **{(w, "hot-gpu"): f"{LABELS[w]}, against all read in place by the GPU (the worker computes in the CPU's numerics: the PPL "
                       "may differ in its last digits)" for w in WORKER if w.startswith("hot-")},
    ("adapt-gpu-worker", "adapt-gpu-noise"): "Adaptive with the CPU worker, against adaptive with every cold expert read by the GPU",
    ("hot-gpu-worker", "hot-gpu-worker-all"): "The worker only in the layers that expect 0.2 (0.5 before 0054) cold selections a token or more, "
                                              "against in every split layer (LLAMA_MOE_WORKER_MIN_COLD=0)",
    ("hot-gpu-worker", "hot-gpu-worker-4k"): "The worker reading host experts in huge pages (0031), against in 4 KiB pages (the same PPL)",
    ("adapt-gpu-worker", "adapt-gpu-worker-4k"): "Adaptive with the worker, host experts in huge pages (0031), against 4 KiB pages (the same PPL)",
    ("adapt-gpu-worker-noise1", "adapt-gpu-worker"): "Adaptive with the worker swapping on a lead of 1 standard deviation, "
                                                     "against 2.5 (the default)",
    ("adapt-gpu-worker-ratio2", "adapt-gpu-worker"): "Adaptive with the worker swapping at ratio 2 and noise 1.5, against ratio 4 "
                                                     "and noise 2.5 (the README's setting)",
    ("adapt-gpu-worker-decay70", "adapt-gpu-worker"): "Adaptive with the worker, its counts times 0.7 after each update (0056), "
                                                      "against halved (the default)",
    ("hot-gpu-worker-l2", "hot-gpu-worker-l1"): "The worker asking for its rows into L2, 2 KiB ahead (0034), against the next row into "
                                                "L1 (0030; the same PPL)",
    ("hot-gpu-worker", "hot-gpu-worker-l1"): "The worker asking for its rows as this CPU does by default, against the next row into L1 "
                                             "(0030; the same PPL)",
    ("hot-gpu-worker", "hot-gpu-worker-whole"): "The worker sharing an expert in parts with the GPU (0035), against whole experts "
                                                "only (the PPL may differ in its last digits)",
    ("adapt-gpu-worker", "adapt-gpu-worker-whole"): "Adaptive with the worker sharing an expert in parts with the GPU (0035), against "
                                                    "whole experts only",
    ("hot-gpu", "hot-gpu-4k"): "The GPU reading cold experts in place from huge pages (0031), against 4 KiB pages (the same PPL)",
    ("hot-gpu-worker-40", "hot-gpu-worker"): "The worker at share 0.4, against 0.5 (the default)",
    ("adapt-gpu-worker-40-noise1", "adapt-gpu-worker-noise1"): "Adaptive, noise 1, with the worker at share 0.4, against 0.5",
    ("adapt-gpu-worker-30", "adapt-gpu-worker"): "Adaptive, with the worker at share 0.3, against 0.5 (the PPL may differ in its "
                                                 "last digits: other experts on the CPU)",
    ("adapt-gpu-worker-40", "adapt-gpu-worker"): "The same at share 0.4",
    ("adapt-gpu-worker", "adapt-gpu-worker-inline"): "Adaptive swaps copied on a stream of their own beside the next ubatch (0037), "
                                                     "against on the layer's stream ahead of it (the same swaps and PPL)",
    ("adapt-gpu-worker-noise1", "adapt-gpu-worker-noise1-inline"): "The same at noise 1 (more swaps)",
    ("hot-gpu-worker-defer", "hot-gpu-worker"): "Lossy: the worker's experts deferred to the next layer's output (0038), against "
                                                "joining their own layer's (the PPL differs by design; its KLD is the fidelity stage's)",
    ("hot-gpu-worker-defer-100", "hot-gpu-worker-100"): "Lossy: every cold expert on the worker, deferred, against not deferred",
    ("adapt-gpu-worker-defer", "adapt-gpu-worker"): "Lossy, adaptive: the worker's experts deferred, against not deferred",
    ("adapt-gpu-worker-follow", "adapt-gpu-worker"): "The worker's layers following the adaptive set (0041), against fixed at "
                                                     "load by the profile (the same swaps)",
    ("adapt-gpu-worker-noise1-follow", "adapt-gpu-worker-noise1"): "The same at noise 1",
    ("hot-gpu-worker-auto", "hot-gpu-worker"): "Each layer's share of the worker moved by the GPU's waits (0048), against 0.5 "
                                               "(static set; the PPL may differ in its last digits: other experts on the CPU)",
    ("adapt-gpu-worker-auto", "adapt-gpu-worker"): "Each layer's share of the worker moved by the GPU's waits (0048), against "
                                                   "0.5, with the adaptive set",
    ("adapt-gpu-worker-t4-auto", "adapt-gpu-worker-t4"): "Each layer's share moved by the GPU's waits against 0.5, with the "
                                                         "adaptive set and a worker of 4 threads, slow on any host: where "
                                                         "the moved share is meant to gain",
    ("hot-gpu-worker", "hot-gpu-worker-even"): "The budget spread over the layers by the profile's selections (0058), against "
                                               "evenly, static set of other text with the worker (the PPL may differ in its last "
                                               "digits: other experts on the CPU)",
    ("hot-gpu-worker-in", "hot-gpu-worker-in-even"): "The budget spread by the profile's selections (0058) against evenly, the "
                                                     "in-sample static set with the worker",
    ("adapt-gpu-worker", "adapt-gpu-worker-even"): "The budget spread by the profile's selections (0058) against evenly, the "
                                                   "adaptive set with the worker",
    ("hot-gpu", "hot-gpu-inplace"): "The GPU's products reading a block's rows of a cold expert into shared memory first (0049), "
                                    "against in place (the same PPL)",
    ("adapt-gpu-worker", "adapt-gpu-worker-inplace"): "The same with the adaptive set and the worker",
    ("hot-gpu-staged", "hot-gpu"): "The GPU's products reading a block's rows of a cold expert into shared memory first "
                                   "(GGML_CUDA_MOE_COLD_STAGE=1, 0049), against in place (the same PPL)",
    ("adapt-gpu-worker-staged", "adapt-gpu-worker"): "The same with the adaptive set and the worker",
    ("hot-gpu-worker-40-plane", "hot-gpu-worker-40"): "The worker reading down's first part from planes of its own (0053), against "
                                                      "down's rows (share 0.4: a lone cold expert's one part; the same PPL)",
    ("adapt-gpu-worker-40-plane", "adapt-gpu-worker-40"): "The same with the adaptive set",
    **{(f"{kind}-gpu-worker-{how}", f"{kind}-gpu-worker"): f"The worker's threads {what}, against {against} ({name} set)"
       for how, what, against in (("sleep", "asleep between decode steps (0051)", "polling 20 ms after each"),
                                  ("cput4", "beside 4 of the CPU backend's (-t 4)", "beside 8"),
                                  ("pinned", "on the upper half of the CPUs and the backend's on the lower (0052)",
                                   "placed by the OS"))
       for kind, name in (("hot", "static"), ("adapt", "adaptive"))},
}
"""A configuration and the one it changes, where both ran: the title of their table."""
OVERLAPS = {("hot-cpu-overlap", "hot-cpu")}
"""The pairs that run the same work with and without the CPU's part overlapped: their time saved over the CPU's time is
the share of it hidden."""


def miss_lines(cells: list[dict], meta: dict) -> list[dict]:
    """Per routing whose static sets' hit rates bench-placements.py recorded (meta's static_hit): the least-squares line
    through the static cells' decode time a token against their missed selections a token (ms = base + per_miss x
    missed), over every budget, and each adaptive cell's time beyond the line at its own hit rate (what it pays besides
    its misses). A routing needs three static cells of two miss counts at least."""
    res = []
    for route, by_config in sorted(meta.get("static_hit", {}).items()):
        per_token = meta["selections_per_token"][route]
        points = [(per_token * (1 - by_config[c["config"]][str(c["budget_pct"])]), 1000 / c["median"]) for c in cells
                  if c["route"] == route and c["median"] and str(c["budget_pct"]) in by_config.get(c["config"], {})]
        if len(points) < 3 or len({x for x, _ in points}) < 2:
            continue
        per_miss, base = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
        adaptive = []
        for c in cells:
            if c["route"] == route and c["config"] in ADAPTIVE and c["median"] and "hit_rate" in c:
                on_line = base + per_miss * per_token * (1 - c["hit_rate"] / 100)
                adaptive.append({"config": c["config"], "budget_pct": c["budget_pct"], "hit_rate": c["hit_rate"],
                                 "ms": round(1000 / c["median"], 3), "on_line_ms": round(on_line, 3),
                                 "beyond_ms": round(1000 / c["median"] - on_line, 3)})
        res.append({"route": route, "points": len(points), "base_ms": round(base, 3), "per_miss_us": round(1000 * per_miss, 1),
                    "adaptive": adaptive})
    return res


PROFILE_STATIC = ("hot-gpu", "hot-gpu-4k", *(w for w in WORKER if w.startswith("hot-")))
"""The configurations whose hot set is hot-gpu's, the profile's and fixed: meta's static_hit["hot-gpu"] is their hit rate."""


def miss_costs(cells: list[dict], meta: dict) -> list[dict]:
    """Per cell of a static set whose hit rate bench-placements.py recorded (meta's static_hit, over the timed tokens) and
    whose routing ran all on the GPU, with a missed selection a token at least: what a miss costs it beyond all on the
    GPU, (ms a token - all on the GPU's) / missed selections a token. Where the worker and the bus take a layer's misses
    side by side a miss costs less than where they come alone, so the cost is a cell's, not the engine's."""
    all_gpu = {c["route"]: c["median"] for c in cells if c["config"] == "all-gpu" and c["median"]}
    res = []
    for c in cells:
        hit = meta.get("static_hit", {}).get(c["route"], {}).get("hot-gpu" if c["config"] in PROFILE_STATIC else c["config"], {}).get(
            str(c["budget_pct"]))
        if hit is None or not c["median"] or c["route"] not in all_gpu:
            continue
        misses = meta["selections_per_token"][c["route"]] * (1 - hit)
        if misses < 1:
            continue
        ms = 1000 / c["median"]
        res.append({"route": c["route"], "budget_pct": c["budget_pct"], "config": c["config"], "misses_per_token": round(misses, 1),
                    "ms": round(ms, 3), "us_per_miss": round(1000 * (ms - 1000 / all_gpu[c["route"]]) / misses, 1)})
    return res


def miss_cost_table(costs: list[dict]) -> list[str]:
    if not costs:
        return []
    out = ["", "## What a miss costs each static cell", "",
           "(ms a token - all on the GPU's) ÷ the set's missed selections a token, its hit rate over the timed tokens from the "
           "traces: the bus alone (`hot-gpu`) against the bus and the worker side by side.", "",
           "| routing | budget | configuration | misses a token | ms a token | µs a miss |", "|---|---|---|---|---|---|"]
    out += [f"| {c['route']} | {c['budget_pct']}% | {c['config']} | {c['misses_per_token']} | {c['ms']} | {c['us_per_miss']} |"
            for c in sorted(costs, key=lambda c: (c["route"], c["budget_pct"], c["config"]))]
    return out


def worker_text(cell: dict) -> str:
    """The CPU worker in a cell: its rate, the GPU's waits for it, its experts in part, its layers and shares at the end; "" without
    it."""
    worker = []
    if "worker_gbs" in cell:
        worker.append(f"{cell['worker_gbs']:.1f} GB/s, {cell['worker_us_per_job']:.1f} µs a job" + (
            f", the GPU waited for it in {cell['worker_recv_waited_pct']:.1f}% of the jobs" if "worker_recv_waited_pct" in cell else "") + (
            f" ({cell['worker_recv_wait_us']:.1f} µs a job: {cell['worker_hidden_pct']:.1f}% of the worker's time hidden behind the GPU's)"
            if "worker_hidden_pct" in cell else "") + (
            f", {cell['worker_in_part_pct']:.1f}% of its experts in part" if "worker_in_part_pct" in cell else ""))
    if "worker_layers_at_end" in cell:
        worker.append(f"in {cell['worker_layers_at_end']:g} layers at the end after {cell['worker_layer_changes']:g} moves")
    if "worker_share_mean" in cell:
        worker.append(f"its share {cell['worker_share_low']:.2f} to {cell['worker_share_high']:.2f} at the end, "
                      f"{cell['worker_share_mean']:.2f} on average")
    return ", ".join(worker)


def pairs(cells: list[dict]) -> list[dict]:
    """Per pair of PAIRS, routing and budget with both: the configuration's tokens/s ÷ the one it changes, and whether their
    PPLs are the same."""
    by = {(c["route"], c["budget_pct"], c["config"]): c for c in cells if c["median"]}
    res = []
    for (route, pct, config), cell in sorted(by.items()):
        for new, old in PAIRS:
            base = by.get((route, pct, old))
            if config == new and base:
                row = {"config": new, "against": old, "route": route, "budget_pct": pct, "tokens_per_s": cell["median"],
                       "against_tokens_per_s": base["median"], "ratio": round(cell["median"] / base["median"], 3),
                       "same_ppl": cell["ppl"] == base["ppl"]}
                worker = worker_text(cell)
                if worker:
                    row["worker"] = worker
                rounds = sorted(cell.get("by_round", {}).keys() & base.get("by_round", {}).keys())
                if len(rounds) > 1:  # the rounds alternate the configurations: a pair's ratio within each round, and its spread
                    ratios = [cell["by_round"][k] / base["by_round"][k] for k in rounds]
                    row["rounds"] = f"{min(ratios):.3f}–{max(ratios):.3f} over {len(rounds)} rounds"
                if "anon_huge_mib" in cell and "anon_huge_mib" in base:
                    row["huge_pages"] = f"{cell['anon_huge_mib']:g} / {base['anon_huge_mib']:g} MiB"
                if (new, old) in OVERLAPS and cell.get("cpu_ms_per_token"):
                    # the time a token saves against the CPU's time a token: the share of the CPU's part that the GPU hides
                    row["cpu_hidden"] = round((1000 / base["median"] - 1000 / cell["median"]) / cell["cpu_ms_per_token"], 3)
                res.append(row)
    return res


def against(cells: list[dict], runs: list[dict], other_cells: list[dict], other_runs: list[dict]) -> dict:
    """The same routing, budget and configuration in another run (e.g. on a prefix of the series, an A/B on one machine):
    this run's tokens/s ÷ the other's, whether their PPLs are the same and the worker's rate and the GPU's waits on each side;
    and where both traced a cell (--timeline, the first round each), its kernels' µs a launch here and there."""
    other = {(c["route"], c["budget_pct"], c["config"]): c for c in other_cells}
    rows = []
    for c in cells:
        o = other.get((c["route"], c["budget_pct"], c["config"]))
        if o and not (c["median"] and o["median"]):  # every run of the cell failed on one side: named, not compared
            rows.append({"route": c["route"], "budget_pct": c["budget_pct"], "config": c["config"],
                         "failed": "both" if not (c["median"] or o["median"]) else "here" if not c["median"] else "there"})
        elif o:
            rows.append({"route": c["route"], "budget_pct": c["budget_pct"], "config": c["config"], "tokens_per_s": c["median"],
                         "against_tokens_per_s": o["median"], "ratio": round(c["median"] / o["median"], 3), "same_ppl": c["ppl"] == o["ppl"],
                         "worker": worker_text(c), "against_worker": worker_text(o)})
    here, there = first_timelines(runs), first_timelines(other_runs)
    timelines = [{"route": key[0], "budget_pct": key[1], "config": key[2], "busy_us_per_token": mine["busy_us_per_token"],
                  "against_busy_us_per_token": there[key]["busy_us_per_token"],
                  "kernels": [{"kernel": name, "us_per_launch": k["us_per_launch"], "own_us_per_launch": k.get("own_us_per_launch"),
                               "us_per_token": k["us_per_token"],
                               **({"against_us_per_launch": there[key]["kernels"][name]["us_per_launch"],
                                   "against_own_us_per_launch": there[key]["kernels"][name].get("own_us_per_launch"),
                                   "against_us_per_token": there[key]["kernels"][name]["us_per_token"]} if name in there[key]["kernels"] else {})}
                              for name, k in list(mine["kernels"].items())[:TIMELINE_KERNELS]]}
                 for key, mine in here.items() if key in there]
    return {"rows": rows, "timelines": timelines}


def first_timelines(runs: list[dict]) -> dict[tuple, dict]:
    """Per routing, budget and configuration: the timeline of its first traced round (--timeline)."""
    first: dict[tuple, dict] = {}
    for r in sorted(runs, key=lambda r: r["round"]):
        if r.get("timeline"):
            first.setdefault((r["route"], r["budget_pct"], r["config"]), r["timeline"])
    return first


def measured(meta: dict) -> str:
    """What the runs timed: "decode" (one token a step; runs before --ubatch were all decode) or "prompt processing"."""
    return "decode" if meta.get("ubatch", 1) == 1 else "prompt processing"


def render_md(report: dict) -> str:
    meta = report["meta"]
    ubatch = meta.get("ubatch", 1)
    lines = [f"# {report['title']}", "", *report["notes"], "",
             f"Model `{Path(meta['model']).name}`: {meta['n_layer']} layers with experts, {meta['expert_mib']} MiB of experts. "
             f"{measured(meta).capitalize()}: `llama-perplexity -c 512 --chunks {meta['chunks']} -b {ubatch} -ub {ubatch}`, {meta['threads']} threads, "
             f"{report['rounds']} alternating rounds; tokens/s median (min-max)."
             + ("" if meta.get("pdl", True) else " CUDA kernels launched without programmatic dependent launch (`GGML_CUDA_PDL=0`)."), ""]
    lines += ["| routing | distinct experts / layer / 32 tokens |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in meta["distinct_per_32"].items()]
    cells = report["cells"]
    for route in sorted({c["route"] for c in cells}):
        lines += ["", f"## {route}", ""]
        budgets = sorted({c["budget_pct"] for c in cells if c["route"] == route and c["config"] in LABELS})
        head = "| configuration | " + " | ".join(
            f"{p}% ({next(c['budget_mib'] for c in cells if c['route'] == route and c['budget_pct'] == p)} MiB)" for p in budgets) + " |"
        lines += [head, "|---|" + "---|" * len(budgets)]
        for config, label in LABELS.items():
            row = []
            for p in budgets:
                c = next((c for c in cells if (c["route"], c["budget_pct"], c["config"]) == (route, p, config)), None)
                if c is None or c["median"] is None:
                    row.append("failed" if c else "")
                    continue
                text = f"{c['median']} ({c['min']}-{c['max']})"
                if "hit_rate" in c:
                    text += f", hit {c['hit_rate']:.1f}%"
                if "swaps_per_token" in c:
                    text += f", {c['swaps_per_token']} swaps/token"
                if c.get("cpu_gbs"):  # a CPU that read no cold experts (--moe-cold gpu) only computed the embeddings' rows
                    text += f", CPU {c['cpu_ms_per_token']:.3f} ms/token at {c['cpu_gbs']} GB/s"
                if "worker_us_per_job" in c:  # hosts differ most in the worker: what it cost this one, and the GPU's wait for it
                    text += f", worker {c['worker_us_per_job']:.0f} µs a job" + (
                        f", the GPU waited {c['worker_recv_wait_us']:.0f} µs a job" if "worker_recv_wait_us" in c else "")
                if "skipped_pct" in c:
                    text += f", {c['skipped_pct']}% of selections skipped"
                if "graphs_reused" in c:
                    text += f", {c['graphs_reused']} graphs reused"
                row.append(text)
            if any(row):
                lines.append(f"| {label} | " + " | ".join(row) + " |")
        for ref, label in REFS.items():
            c = next((c for c in cells if (c["route"], c["config"]) == (route, ref)), None)
            if c and c["median"]:
                lines.append(f"| {label} | {c['median']} ({c['min']}-{c['max']}) |" + " |" * (len(budgets) - 1))
    lines += comparison_table(report["comparisons"], "Fork against upstream's best placement at the same VRAM")
    if report.get("lossy"):
        lines += comparison_table(report["lossy"], "Lossy: the fork skipping cold experts (--moe-cold-top) against upstream's best placement")
    if report.get("prefetch"):
        lines += comparison_table(report["prefetch"], "Prefetch (--moe-prefetch) against upstream's best placement, apart from the fork's placements")
    lines += ["", "## Adaptive against static", "",
              "Bar (issue 10): within 5 % of the in-sample static set (≥ 0.95), never below the static set from other text (≥ 1.0).", "",
              "| routing | budget | best adaptive | t/s | ÷ best static, other text | ÷ best static, in-sample |", "|---|---|---|---|---|---|"]
    for a in report.get("adaptive", []):
        against = [f"{a[f'of_{key}']} ({a[key]})" if key in a else "not run" for key in ("static_other", "static_in")]
        lines.append(f"| {a['route']} | {a['budget_pct']}% | {a['adaptive']} | {a['tokens_per_s']} | {against[0]} | {against[1]} |")
    lines += miss_tables(report.get("misses", []), measured(meta))
    lines += miss_cost_table(report.get("miss_costs", []))
    for (new, old), title in PAIRS.items():
        rows = [p for p in report.get("pairs", []) if (p["config"], p["against"]) == (new, old)]
        if rows:
            extra = [(key, name) for key, name in (("rounds", "ratio within each round"), ("cpu_hidden", "share of the CPU's time hidden"),
                                                   ("worker", "the worker's rate"),
                                                   ("huge_pages", "in huge pages (the first / the second, fewest seen)"))
                     if any(key in p for p in rows)]
            lines += ["", f"## {title}", "", f"| routing | budget | {new} t/s | {old} t/s | ratio | same PPL |"
                      + "".join(f" {name} |" for _, name in extra), "|---|---|---|---|---|---|" + "---|" * len(extra)]
            lines += [f"| {p['route']} | {p['budget_pct']}% | {p['tokens_per_s']} | {p['against_tokens_per_s']} | {p['ratio']} | "
                      f"{'yes' if p['same_ppl'] else 'NO'} |" + "".join(f" {p.get(key, '')} |" for key, _ in extra) for p in rows]
    lines += timeline_tables(report.get("runs", []))
    lines += against_tables(report.get("against"))
    lines += ["", "## Commands (first round)", ""]
    lines += [f"- {c['route']} {c['budget_pct']}% {c['config']}: `{c['cmd']}`" for c in cells]
    return "\n".join(lines) + "\n"


TIMELINE_KERNELS = 10
"""The kernels a traced run's table shows, the most time first."""


def timeline_tables(runs: list[dict]) -> list[str]:
    """The GPU's time in each run recorded with bench-placements --timeline (scripts/gpu-timeline.c)."""
    traced = [r for r in runs if r.get("timeline")]
    if not traced:
        return []
    lines = ["", "## The GPU's time in the traced runs (bench-placements --timeline; the recording slows a run: compare traced "
             "runs with each other)"]
    for r in traced:
        lines += ["", f"### {r['route']} {r['budget_pct']}% {r['config']}, round {r['round']}: {r.get('tokens_per_s')} t/s traced", "",
                  gpu_timeline.render(r["timeline"], TIMELINE_KERNELS)]
    return lines


def against_tables(ab: dict | None) -> list[str]:
    """report-placements --against: this run's cells and traced kernels beside the other run's."""
    if not ab:
        return []
    name = ab["name"]
    lines = ["", f"## Against {name} (the same configurations; `{ab['dir']}`)", "",
             f"| routing | budget | configuration | t/s | {name} t/s | ratio | same PPL | the worker here | the worker in {name} |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['route']} | {r['budget_pct']}% | {r['config']} | not compared: every run failed {r['failed']} | | | | | |"
              if "failed" in r else
              f"| {r['route']} | {r['budget_pct']}% | {r['config']} | {r['tokens_per_s']} | {r['against_tokens_per_s']} | {r['ratio']} | "
              f"{'yes' if r['same_ppl'] else 'NO'} | {r['worker']} | {r['against_worker']} |" for r in ab["rows"]]
    for t in ab["timelines"]:
        lines += ["", f"### Traced: {t['route']} {t['budget_pct']}% {t['config']}, GPU busy {t['busy_us_per_token']:.1f} µs a token "
                  f"against {t['against_busy_us_per_token']:.1f} in {name}", "",
                  f"| kernel | µs a launch | in {name} | its own µs a launch | in {name} | µs a token | in {name} |", "|---|---|---|---|---|---|---|"]
        own = gpu_timeline.own_text
        lines += [f"| {k['kernel']} | {k['us_per_launch']:.2f} | {k['against_us_per_launch']:.2f} | {own(k['own_us_per_launch'])} | "
                  f"{own(k['against_own_us_per_launch'])} | {k['us_per_token']:.1f} | {k['against_us_per_token']:.1f} |"
                  if "against_us_per_launch" in k else
                  f"| {k['kernel']} | {k['us_per_launch']:.2f} | not run | {own(k['own_us_per_launch'])} | | {k['us_per_token']:.1f} | |"
                  for k in t["kernels"]]
    return lines


def miss_tables(lines_by_route: list[dict], timed: str = "decode") -> list[str]:
    if not lines_by_route:
        return []
    out = ["", f"## {timed.capitalize()} time against the static sets' misses", "",
           "A least-squares line through the static cells (`hot-gpu`, `hot-gpu-in`) at every budget: ms a token against the "
           "missed selections a token, (1 - the static set's hit rate over the timed tokens, from the traces) x the "
           "selections a token. A fit over few cells, not a measurement of one part.", "",
           "| routing | static cells | ms a token with no miss | µs a missed selection |", "|---|---|---|---|"]
    out += [f"| {m['route']} | {m['points']} | {m['base_ms']} | {m['per_miss_us']} |" for m in lines_by_route]
    adaptive = [(m["route"], a) for m in lines_by_route for a in m["adaptive"]]
    if adaptive:
        out += ["", "Adaptive cells against the line at their own hit rate: what they pay besides their misses (counting, swaps). "
                "Their hit rate is over every routed token, the time over the timed half: where the set hits more in that "
                "half, as one that adapts from its start does, the time beyond the line is larger.", "",
                "| routing | budget | configuration | hit | ms a token | on the line | beyond it (ms) |", "|---|---|---|---|---|---|---|"]
        out += [f"| {route} | {a['budget_pct']}% | {a['config']} | {a['hit_rate']:.1f}% | {a['ms']} | {a['on_line_ms']} | {a['beyond_ms']} |"
                for route, a in adaptive]
    return out


def comparison_table(rows: list[dict], title: str) -> list[str]:
    lines = ["", f"## {title}", ""]
    if any(c.get("fork_configs", 1) > 1 for c in rows):
        lines += ["Where a cell ran several of the fork's configurations, the best of their medians is picked after the runs: "
                  "within the spread of the rounds (min-max above) that pick favours the fork. Each configuration's own row is "
                  "in the tables above.", ""]
    lines += ["| routing | budget | best upstream | t/s | best fork | t/s | ratio | of all on the GPU | issue 10's bar (t/s) | fork ÷ bar |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in rows:
        if "missing" in c:
            lines.append(f"| {c['route']} | {c['budget_pct']}% | not compared: no result for {', '.join(c['missing'])} | | | | | | | |")
            continue
        met = "met" if c["of_bar"] >= 1 else "not met"
        picked = f" (best of {c['fork_configs']})" if c.get("fork_configs", 1) > 1 else ""
        lines.append(f"| {c['route']} | {c['budget_pct']}% | {c['best_upstream']} | {c['upstream']} | {c['best_fork']}{picked} | {c['fork']} | "
                     f"{c['ratio']} | {c['of_all_gpu'] if c['of_all_gpu'] is not None else 'not run'} | {c['bar']} | {c['of_bar']} ({met}) |")
    return lines


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = report["cells"]
    routes = sorted({c["route"] for c in cells})
    # one colour a configuration in every panel, the legend the union of the panels' lines
    plotted = [config for config in LABELS if any(c["config"] == config and c["median"] for c in cells)]
    palette = plt.get_cmap("tab10" if len(plotted) <= 10 else "tab20")
    colours = {config: palette(i % palette.N) for i, config in enumerate(plotted)}
    handles = {}
    fig, axes = plt.subplots(1, len(routes), figsize=(6 * len(routes), 4.5), squeeze=False)
    for ax, route in zip(axes[0], routes):
        for config in plotted:
            pts = sorted((c["budget_pct"], c["median"]) for c in cells
                         if c["route"] == route and c["config"] == config and c["median"])
            if pts:
                handles[config], = ax.plot(*zip(*pts), marker="o", color=colours[config], label=textwrap.fill(LABELS[config], 60),
                                           linestyle="--" if config in UPSTREAM else ":" if config in LOSSY else "-")
        for ref, label in REFS.items():
            c = next((c for c in cells if (c["route"], c["config"]) == (route, ref) and c["median"]), None)
            if c:
                ax.axhline(c["median"], color="grey", linewidth=0.8, linestyle=":")
                ax.annotate(f"{label} {c['median']}", (0.01, c["median"]), xycoords=("axes fraction", "data"), fontsize=7)
        ax.set_title(f"{route} ({report['meta']['distinct_per_32'].get(route)} distinct experts / 32 tokens)")
        ax.set_xlabel("VRAM for experts, % of the model's expert bytes")
        ax.set_ylabel(f"{measured(report['meta'])} tokens/s")
        ax.grid(alpha=0.3)
    # beside the last panel, so that long labels widen the figure, not squeeze the panels
    axes[0][-1].legend([handles[c] for c in plotted], [handles[c].get_label() for c in plotted], fontsize=7,
                       loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def merge_stages(stages: list[Path], out: Path) -> None:
    """Writes OUT/runs.jsonl and OUT/meta.json from several bench-placements output folders."""
    runs: list[str] = []
    meta: dict = {}
    for stage in stages:
        for name in ("runs.jsonl", "meta.json"):
            if not (stage / name).is_file():
                raise ValueError(f"{stage}: no {name}: pass the folders bench-placements.py wrote (--out)")
        runs += [line for line in (stage / "runs.jsonl").read_text().splitlines() if line.strip()]
        merge_meta(meta, json.loads((stage / "meta.json").read_text()), str(stage))
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.jsonl").write_text("\n".join(runs) + "\n")
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


AGAINST_SETTINGS = ("model", "n_layer", "expert_mib", "threads", "chunks", "ubatch")
"""What two runs compared with --against must share (with each routing's trace, by its distinct experts)."""


def read_against(other: Path, name: str | None, cells: list[dict], runs: list[dict], meta: dict) -> dict:
    """--against OTHER: its runs beside DIR's, which must be of the same model and settings and share a cell."""
    for file in ("runs.jsonl", "meta.json"):
        if not (other / file).is_file():
            raise ValueError(f"--against {other}: no {file}: pass a folder bench-placements.py wrote (--out)")
    other_meta = json.loads((other / "meta.json").read_text())
    settings = [(key, meta.get(key), other_meta.get(key)) for key in AGAINST_SETTINGS]
    settings += [(f"distinct_per_32 {route}", meta["distinct_per_32"][route], n)
                 for route, n in other_meta.get("distinct_per_32", {}).items() if route in meta.get("distinct_per_32", {})]
    for key, here, there in settings:
        if here != there:
            raise ValueError(f"--against {other}: meta.json {key} is {there!r} there and {here!r} here: compare runs of the same "
                             "model, settings and routing traces")
    other_runs = [json.loads(line) for line in (other / "runs.jsonl").read_text().splitlines() if line.strip()]
    ab = against(cells, runs, summarise(other_runs)["cells"], other_runs)
    if not ab["rows"]:
        raise ValueError(f"--against {other}: no routing, budget and configuration in both runs: run the same configurations "
                         "on the other build")
    return {"dir": str(other), "name": name or other.name, **ab}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path)
    p.add_argument("--title", help="default: Expert placements at the same VRAM, and what the runs timed")
    p.add_argument("--note", action="append", default=[])
    p.add_argument("--from", dest="stages", type=Path, action="append", default=[],
                   help="a bench-placements output folder whose runs and meta.json are merged into DIR (repeat)")
    p.add_argument("--against", type=Path, metavar="OTHER",
                   help="another run of the same configurations (e.g. a prefix of the series on the same machine): a table of "
                        "DIR's tokens/s ÷ OTHER's per cell, and of their traced kernels")
    p.add_argument("--against-name", metavar="NAME", help="what the report calls OTHER (default: its folder's name)")
    args = p.parse_args()
    if args.stages:
        try:
            merge_stages(args.stages, args.dir)
        except ValueError as e:
            print(f"report-placements: {e}", file=sys.stderr)
            return 2
    runs = [json.loads(line) for line in (args.dir / "runs.jsonl").read_text().splitlines() if line.strip()]
    meta = json.loads((args.dir / "meta.json").read_text())
    summary = summarise(runs, measured(meta))
    report = {"schema": 1, "title": args.title or f"Expert placements at the same VRAM, {measured(meta)}", "notes": args.note, "meta": meta, "rounds": len({r["round"] for r in runs}),
              **summary, "misses": miss_lines(summary["cells"], meta), "miss_costs": miss_costs(summary["cells"], meta), "runs": runs}
    if args.against:
        try:
            report["against"] = read_against(args.against, args.against_name, summary["cells"], runs, meta)
        except ValueError as e:
            print(f"report-placements: {e}", file=sys.stderr)
            return 2
    (args.dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    md = render_md(report)
    (args.dir / "report.md").write_text(md)
    plot(report, args.dir / "placements.png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
