#!/usr/bin/env python3
"""A decode-time model of cold experts read in place by the GPU (--moe-cold gpu), per budget, on a replayed trace.

    scripts/placement-model.py --replay R.bin [--profile P.bin] --all-gpu-ts 520 --expert-mib 2.53 \
        [--budgets 25,50,75] [--measured 25=165.6 ...] [--adapt] [--cpu-gbs 30 [--handoff-us 15]]

Per token: all-GPU time + cold selections x (expert bytes at --read-gbs, zero-copy; shared/ENGINE-FACTS.md:
44 GB/s for one expert on the H200) + swaps x (expert bytes at --copy-gbs, pinned copy). The static row
keeps the profile's hot set (as --moe-hot-profile picks it; without --profile experts 0..n-1): with a
profile of other text it is the bound of the static placement, leaving out what the split adds (its
kernels per layer) and any overlap with the CPU; --measured prints the share of it reached.

--cpu-gbs adds the hybrid executor issue 10 asks for, as a model: each layer step splits its cold experts between
the GPU reading some in place and the CPU computing the rest at the same time (at --cpu-gbs, after a handoff of
--handoff-us), the split that ends first. Give --cpu-gbs the CPU's rate in place: 0019's "moe CPU compute" line
(--moe-hot-stats) measured 10-27 GB/s at 8 threads on the H200 machine, 17-45 % of its memory bandwidth. The default
handoff is the scheduler's round trip of shared/ENGINE-FACTS.md (about 80 us a layer); with it and 22 GB/s the model priced 0018 on
the H200 at 0.78x / 0.75x the static row (25 / 50 %), where it measured 0.82x / 0.61x (2026-12-02, seventh session;
a flag each way, 6.5 + 8.4 us, is what a device-side handoff would cost, and had the model predict a gain). It assumes perfect
overlap and no slowdown of either side by the other, so it bounds what such an executor can gain. It also prices
patch 0018's split (`--moe-cold hybrid`), which fixes each cold expert's side at load (builder.hot_experts.cpu_side,
by the profile and the CPU's share, --shares): a step's time is the later of its GPU's and CPU's sides.

--adapt adds patch 0004's adaptive hot set (--moe-hot-adapt), started from the same hot set, for a grid
of its constants (--every, --ratio, --margin, --max-swaps, --noise): its swaps are simulated (builder.expert_cache.hysteresis_hit_rates, which reproduced
the H200 runs' swap counts within 2 % and their hit rates to 0.2 points). The model leaves out the
bookkeeping of each update, so it flatters frequent updates; compare constants with it, then measure.

--prefetch F.json (scripts/predict-experts.py's output) adds a prefetch of each layer's m best-predicted cold experts
(--predictor) into spare slots, copied at --copy-gbs while the GPU computes the --lead-us before the layer's router:
a token pays the static row's time, less the share of its in-place reads the predictor covered, plus each layer's
copies beyond the lead; beside it the same m slots spent on a larger static set (`more-hot`, no copies). The coverage
is the predictor's on the model predict-experts.py ran (the trained model), carried over to this replay by budget;
copies and the uncovered reads are assumed not to contend for the bus. So it says what coverage a prefetch needs,
not what it will get.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder import hot_experts, moe_trace  # noqa: E402
from builder.expert_cache import hysteresis_hit_rates  # noqa: E402

MB_PER_MIB = 1.048576


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replay", type=Path, required=True)
    p.add_argument("--profile", type=Path)
    p.add_argument("--budgets", default="25,50,75", help="percent of each layer's experts hot")
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--all-gpu-ts", type=float, required=True)
    p.add_argument("--expert-mib", type=float, required=True)
    p.add_argument("--read-gbs", type=float, default=44.0)
    p.add_argument("--copy-gbs", type=float, default=51.0)
    p.add_argument("--cpu-gbs", type=float, help="the CPU's rate for one token's cold experts: adds the hybrid split")
    p.add_argument("--handoff-us", type=float, default=80.0, help="GPU to CPU and back, when the CPU takes any (default: %(default)s)")
    p.add_argument("--shares", default="0.3,0.5,0.7", help="with --cpu-gbs: the CPU's shares (--moe-cold-cpu-share) of 0018's split")
    p.add_argument("--measured", nargs="*", default=[], metavar="PCT=TS", help="measured tokens/s of the static placement")
    p.add_argument("--prefetch", type=Path, help="scripts/predict-experts.py's JSON: add a prefetch of predicted cold experts")
    p.add_argument("--predictor", default="before-attention", help="with --prefetch: whose coverage (default: %(default)s)")
    p.add_argument("--lead-us", type=float, help="with --prefetch: GPU time between the prediction and the layer's router")
    p.add_argument("--adapt", action="store_true", help="also the adaptive hot set, for the grid below")
    p.add_argument("--every", default="8,32")
    p.add_argument("--ratio", default="1.25,2,4")
    p.add_argument("--margin", default="1,4")
    p.add_argument("--max-swaps", default="1,4")
    p.add_argument("--noise", default="0,2.5", help="--moe-hot-adapt-noise (0015; 0: the rule before it)")
    args = p.parse_args()

    replay = moe_trace.take_tokens(moe_trace.read_trace(args.replay), 0, args.tokens)
    ids, n_expert, n_layer = replay.ids, replay.n_expert, replay.n_layer
    selections = int((ids >= 0).sum())
    profile = moe_trace.selection_counts(moe_trace.read_trace(args.profile)) if args.profile else None
    t_gpu = 1000 / args.all_gpu_ts
    t_read = args.expert_mib * MB_PER_MIB / args.read_gbs
    t_copy = args.expert_mib * MB_PER_MIB / args.copy_gbs

    measured = {int(k): float(v) for k, v in (m.split("=") for m in args.measured)}
    if args.prefetch and args.lead_us is None:
        p.error("--prefetch needs --lead-us: the GPU time a layer has between the prediction and its router")
    coverage = prefetch_coverage(args.prefetch, args.predictor) if args.prefetch else {}

    def tokens_per_s(rates: list[float | None], swaps: int) -> tuple[float, float]:
        hit = float(np.mean([r for r in rates if r is not None]))
        ms = t_gpu + (1 - hit) * selections / replay.n_tokens * t_read + swaps / replay.n_tokens * t_copy
        return hit, 1000 / ms

    grid = list(itertools.product(*(map(float, getattr(args, k).split(",")) for k in ("every", "ratio", "margin", "max_swaps", "noise"))))
    for pct in (int(b) for b in args.budgets.split(",")):
        n_hot = n_expert * pct // 100
        start = ([sorted(hot_experts.hot_sets(profile, {layer: n_hot})[layer]) for layer in range(n_layer)] if profile is not None
                 else [list(range(n_hot))] * n_layer)
        hit, ts = tokens_per_s(hysteresis_hit_rates(ids, n_expert, start, every=replay.n_tokens + 1)[0], 0)
        cold = (1 - hit) * selections / replay.n_tokens
        line = (f"{pct}%: static {'profile' if profile is not None else 'experts 0..n-1'}: hit {hit:.3f}, "
                f"cold experts per token {cold:.1f}, {ts:.0f} tokens/s")
        if pct in measured:
            line += f", measured {measured[pct]} ({measured[pct] / ts:.2f} of it)"
        print(line)
        for m, cover in coverage.get(pct, {}).items():
            ms = prefetch_ms(t_gpu, cold, t_read, t_copy, n_layer, m, cover[args.predictor], args.lead_us / 1000)
            more = 1000 / prefetch_ms(t_gpu, cold, t_read, t_copy, n_layer, 0, cover["more-hot"], 0.0)
            print(f"  prefetch of {m} a layer ({args.predictor}, {cover[args.predictor]:.0%} of the misses covered): "
                  f"{1000 / ms:.0f} tokens/s ({1000 / ms / ts:.2f}x the static row); the same slots as hot experts instead: {more:.0f}")
        if args.cpu_gbs:
            hot = np.zeros((n_layer, n_expert), dtype=bool)
            for layer, experts in enumerate(start):
                hot[layer, experts] = True
            cold = cold_selections(ids, hot)
            t_cpu, handoff = args.expert_mib * MB_PER_MIB / args.cpu_gbs, args.handoff_us / 1000
            ms, cpu_share = hybrid_cold_ms(cold.sum(axis=2), t_read, t_cpu, handoff)
            hybrid_ts = 1000 / (t_gpu + ms)
            print(f"  hybrid (model, CPU at {args.cpu_gbs} GB/s, handoff {args.handoff_us} us): {cpu_share:.0%} of the cold experts "
                  f"on the CPU, {hybrid_ts:.0f} tokens/s ({hybrid_ts / ts:.2f}x the static row)")
            for share in map(float, args.shares.split(",")):
                on_cpu = np.array([hot_experts.cpu_side(None if profile is None else profile[layer], start[layer], n_expert, share)
                                   for layer in range(n_layer)])
                ms, cpu_share = sides_cold_ms(ids, cold, on_cpu, t_read, t_cpu, handoff)
                split_ts = 1000 / (t_gpu + ms)
                print(f"  0018 --moe-cold-cpu-share {share}: {cpu_share:.0%} of the cold experts on the CPU, {split_ts:.0f} tokens/s "
                      f"({split_ts / ts:.2f}x the static row, {split_ts / hybrid_ts:.2f}x the per-step split)")
        if not args.adapt:
            continue
        rows = []
        for every, ratio, margin, max_swaps, noise in grid:
            rates, swaps = hysteresis_hit_rates(ids, n_expert, start, int(every), ratio, margin, int(max_swaps), noise)
            hit, ts = tokens_per_s(rates, swaps)
            rows.append((ts, hit, swaps / replay.n_tokens, int(every), ratio, margin, int(max_swaps), noise))
        for ts, hit, spt, every, ratio, margin, max_swaps, noise in sorted(rows, reverse=True):
            mark = {(8, 1.25, 1.0, 4, 0.0): " (0004's constants)", (8, 1.25, 1.0, 4, 2.5): " (the defaults since 0015)"}.get(
                (every, ratio, margin, max_swaps, noise), "")
            print(f"  every {every:2} ratio {ratio:4} margin {margin:3} max swaps {max_swaps} noise {noise:3}: hit {hit:.3f}, "
                  f"{spt:.2f} swaps/token, {ts:.0f} tokens/s{mark}")
    return 0


def prefetch_coverage(path: Path, predictor: str) -> dict[int, dict[int, dict[str, float]]]:
    """By budget percent and slot count: the coverages in predict-experts.py's JSON at `path` (predictor's among them)."""
    result = json.loads(path.read_text())
    names = {*result["topk_recall"], "more-hot"}
    if predictor not in names:
        sys.exit(f"error: {path} has no predictor {predictor!r} (it has {', '.join(sorted(names))}); give --predictor one of those")
    return {row["budget_pct"]: {int(m): cover for m, cover in row["slots"].items()} for row in result["budgets"]}


def prefetch_ms(t_gpu: float, cold: float, t_read: float, t_copy: float, n_layer: int, slots: int, covered: float, lead: float) -> float:
    """Milliseconds a token when `covered` of its `cold` in-place reads (t_read each) are prefetched instead: each of
    n_layer layers copies `slots` experts (t_copy each), of which the part beyond `lead` adds to the step."""
    return t_gpu + (1 - covered) * cold * t_read + n_layer * max(0.0, slots * t_copy - lead)


def hybrid_cold_ms(cold_counts: np.ndarray, t_read: float, t_cpu: float, handoff: float) -> tuple[float, float]:
    """Milliseconds of cold experts per token and the share of them on the CPU, when each layer step's cold experts
    (cold_counts [tokens, layers]) are split between the GPU reading n in place (t_read each) and the CPU computing
    the others at the same time (handoff + t_cpu each, no handoff when it takes none), the split ending first."""
    n_max = int(cold_counts.max(initial=0))
    best_ms, best_cpu = np.zeros(n_max + 1), np.zeros(n_max + 1)
    for cold in range(1, n_max + 1):
        ends = [max((cold - on_cpu) * t_read, handoff + on_cpu * t_cpu if on_cpu else 0.0) for on_cpu in range(cold + 1)]
        best_cpu[cold] = int(np.argmin(ends))
        best_ms[cold] = ends[int(best_cpu[cold])]
    total = cold_counts.sum()
    return best_ms[cold_counts].sum() / len(cold_counts), (best_cpu[cold_counts].sum() / total if total else 0.0)


def per_selection(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """table [layers, experts] looked up for each selection of ids [tokens, layers, used] (-1 reads expert 0), same shape."""
    return table[np.arange(ids.shape[1])[None, :, None], np.maximum(ids, 0)]


def cold_selections(ids: np.ndarray, hot: np.ndarray) -> np.ndarray:
    """Which selections of ids [tokens, layers, used] are of a cold expert (hot [layers, experts]), same shape."""
    return (ids >= 0) & ~per_selection(hot, ids)


def sides_cold_ms(ids: np.ndarray, cold: np.ndarray, on_cpu: np.ndarray, t_read: float, t_cpu: float, handoff: float) -> tuple[float, float]:
    """Milliseconds of cold experts per token and the share of them on the CPU, when each cold expert has a fixed side
    (on_cpu [layers, experts], as --moe-cold hybrid): in each layer step of ids [tokens, layers, used], whose cold
    selections are `cold` (cold_selections), the GPU reads its side's cold experts in place (t_read each) while the CPU
    computes the others (handoff + t_cpu each, no handoff when it has none)."""
    n_cpu = (cold & per_selection(on_cpu, ids)).sum(axis=2)
    n_gpu = cold.sum(axis=2) - n_cpu
    steps = np.maximum(n_gpu * t_read, np.where(n_cpu > 0, handoff + n_cpu * t_cpu, 0.0))
    total = cold.sum()
    return steps.sum() / len(ids), (n_cpu.sum() / total if total else 0.0)


if __name__ == "__main__":
    sys.exit(main())
