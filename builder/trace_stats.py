"""`trace-stats`: what a routing trace means for an expert cache (docs/trace-stats.md).

All statistics are over the trace's routed tokens (`moe_trace.routed_tokens`: the tokens every
routed layer computed, in the order they were computed), per layer, then averaged over the layers:
distinct experts per 32 tokens, the share of selections the most selected experts cover, the reuse
distance in tokens, and the hit rates of static, LRU, decayed-frequency and optimal (Belady's) caches and
of the fork's adaptive hot set (builder/expert_cache.py) at shares of the experts.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import expert_cache
from .errors import UsageError
from .hot_experts import hot_sets
from .moe_trace import Trace, distinct_experts_per_window, read_routed, selection_counts, take_tokens

SHARES = (0.125, 0.25, 0.5, 0.75)
"""Shares of a layer's experts at which coverage and cache hit rates are given."""
WINDOW = 32
LABEL = 27
HALF_LIFE = 32.0
"""Default half-life in tokens of the decayed-frequency cache's counts."""
WORKER_MIN_COLD = 0.2
"""The engine's LLAMA_MOE_WORKER_MIN_COLD: a layer with fewer cold selections a token does without the CPU worker."""


@dataclass(frozen=True)
class AdaptRule:
    """The adaptive hot set's constants: --moe-hot-adapt EVERY, -ratio, -margin, -noise, -decay. The defaults are the
    setting the README recommends (every 32 tokens, ratio 4), with the engine's margin, noise and decay."""
    every: int = 32
    ratio: float = 4.0
    margin: float = 1.0
    noise: float = 2.5
    decay: float = 0.5


def capacity(share: float, n_expert: int) -> int:
    return max(1, math.ceil(share * n_expert))


def coverage(counts: np.ndarray, n_top: int) -> np.ndarray:
    """Per layer: the share of its selections (`counts`, [n_layer, n_expert]) that its `n_top`
    most selected experts cover."""
    ranked = -np.sort(-counts, axis=1)
    totals = counts.sum(axis=1)
    return ranked[:, :n_top].sum(axis=1) / np.maximum(totals, 1)


def experts_to_cover(counts: np.ndarray, share: float) -> np.ndarray:
    """Per layer: the fewest experts whose selections make up at least `share` of the layer's."""
    ranked = -np.sort(-counts, axis=1)
    cumulative = np.cumsum(ranked, axis=1) / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return (cumulative < share - 1e-12).sum(axis=1) + 1


def reuse_distances(trace: Trace) -> np.ndarray:
    """Tokens between a selection and the previous selection of the same expert in the same layer,
    over all layers (first selections have none)."""
    token, layer, slot = np.nonzero(trace.ids >= 0)
    expert = trace.ids[token, layer, slot].astype(np.int64)
    order = np.lexsort((token, expert, layer))
    token, layer, expert = token[order], layer[order], expert[order]
    same = (layer[1:] == layer[:-1]) & (expert[1:] == expert[:-1])
    return (token[1:] - token[:-1])[same]


def worker_layers(hit_rates, n_expert_used: int) -> int:
    """The layers whose misses under a cache of these hit rates reach the worker's threshold, WORKER_MIN_COLD cold
    selections a token over the trace (0041, with LLAMA_MOE_WORKER_FOLLOW=1, moves layers as the adaptive set's running rate
    crosses it)."""
    return sum(1 for hit in hit_rates if hit is not None and n_expert_used * (1.0 - hit) >= WORKER_MIN_COLD)


def _layer_summary(values) -> dict:
    per_layer = [None if v is None else float(v) for v in values]
    known = [v for v in per_layer if v is not None]
    return {"mean": sum(known) / len(known) if known else None, "per_layer": per_layer}


def check_same_shape(trace: Trace, path: Path, other: Trace, other_path: Path) -> None:
    shape, other_shape = (trace.n_layer, trace.n_expert), (other.n_layer, other.n_expert)
    if shape != other_shape:
        raise UsageError(f"{other_path}: a trace of another model shape (layers, experts) {other_shape} than {path}'s {shape}",
                         "profile with a trace of the same model")


def first_tokens(trace: Trace, path: Path, n_tokens: int | None) -> Trace:
    """The first `n_tokens` routed tokens of `trace` (all of them for None); an error naming the trace's count where
    it has fewer."""
    if n_tokens is None:
        return trace
    if not 1 <= n_tokens <= trace.n_tokens:
        raise UsageError(f"--tokens {n_tokens}: {path} has {trace.n_tokens} routed tokens",
                         f"pass --tokens from 1 to {trace.n_tokens}, or leave it out for the whole trace")
    return take_tokens(trace, 0, n_tokens)


def trace_stats(path: Path, profile_path: Path | None = None, half_life: float = HALF_LIFE, adapt: AdaptRule = AdaptRule(),
                n_tokens: int | None = None) -> dict:
    """The statistics of the trace at `path` (of its first `n_tokens` routed tokens where given), as `trace-stats
    --json` prints them. The static cache's hot set comes from `profile_path`'s selection counts, else from the
    tokens counted (in-sample: an upper bound for a static profile); the adaptive hot set starts from it."""
    whole = read_routed(path)
    trace = first_tokens(whole, path, n_tokens)
    counts = selection_counts(trace)
    if profile_path is None:
        profile_counts, profile = counts, "in-sample"
    else:
        profile_trace = read_routed(profile_path)
        check_same_shape(trace, path, profile_trace, profile_path)
        profile_counts, profile = selection_counts(profile_trace), str(profile_path)
    distances = reuse_distances(trace)
    caches = []
    for share in SHARES:
        n = capacity(share, trace.n_expert)
        rates = {
            "static": expert_cache.static_hit_rates(trace.ids, profile_counts, n),
            "lru": expert_cache.lru_hit_rates(trace.ids, trace.n_expert, n),
            "decayed-frequency": expert_cache.decayed_frequency_hit_rates(trace.ids, trace.n_expert, n, half_life),
            "optimal": expert_cache.optimal_hit_rates(trace.ids, trace.n_expert, n),
        }
        caches += [{"policy": policy, "share": share, "experts": n, **_layer_summary(r),
                    **({"worker_layers": worker_layers(r, trace.n_expert_used)} if policy == "static" else {})}
                   for policy, r in rates.items()]
        start = hot_sets(profile_counts, dict.fromkeys(range(trace.n_layer), n))
        adaptive, swaps = expert_cache.hysteresis_hit_rates(trace.ids, trace.n_expert, [start[layer] for layer in range(trace.n_layer)],
                                                            adapt.every, adapt.ratio, adapt.margin, noise=adapt.noise,
                                                            decay=adapt.decay)
        caches.append({"policy": "adaptive", "share": share, "experts": n, **_layer_summary(adaptive),
                       "swaps_per_token": swaps / trace.n_tokens, "worker_layers": worker_layers(adaptive, trace.n_expert_used)})
    return {
        "trace": str(path),
        "n_layer": trace.n_layer,
        "n_expert": trace.n_expert,
        "n_expert_used": trace.n_expert_used,
        "tokens": trace.n_tokens,
        "trace_tokens": whole.n_tokens,
        "distinct_per_32_tokens": _layer_summary(distinct_experts_per_window(trace, WINDOW)),
        "coverage": [{"share": s, "experts": capacity(s, trace.n_expert), **_layer_summary(coverage(counts, capacity(s, trace.n_expert)))}
                     for s in SHARES],
        "experts_for_90_percent": _layer_summary(experts_to_cover(counts, 0.9)),
        "reuse_distance_tokens": {
            "median": float(np.median(distances)) if distances.size else None,
            "mean": float(distances.mean()) if distances.size else None,
            "p90": float(np.percentile(distances, 90)) if distances.size else None,
            "first_selections": int((trace.ids >= 0).sum() - distances.size),
        },
        "cache_profile": profile,
        "decay_half_life_tokens": half_life,
        "adapt": asdict(adapt),
        "caches": caches,
    }


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def _counted(stats: dict) -> str:
    return str(stats["tokens"]) if stats["tokens"] == stats["trace_tokens"] else f"the first {stats['tokens']} of {stats['trace_tokens']}"


def render_text(stats: dict) -> str:
    s = stats
    reuse = s["reuse_distance_tokens"]
    lines = [
        f"{s['trace']}: {_counted(s)} routed tokens, {s['n_layer']} layers, {s['n_expert']} experts, {s['n_expert_used']} used",
        f"distinct experts per {WINDOW} tokens (mean over layers): {s['distinct_per_32_tokens']['mean']:.1f}",
        f"experts covering 90% of selections (mean over layers): {s['experts_for_90_percent']['mean']:.1f}"
        f" of {s['n_expert']}",
        f"reuse distance in tokens: median {reuse['median']}, mean {reuse['mean']:.1f}, p90 {reuse['p90']}"
        if reuse["median"] is not None else "reuse distance: no expert selected twice",
        "",
        f"{'share of experts':<{LABEL}}" + "".join(f"{c['share'] * 100:>7.1f}%" for c in s["coverage"]),
        f"{'experts per layer':<{LABEL}}" + "".join(f"{c['experts']:>8}" for c in s["coverage"]),
        f"{'coverage of selections':<{LABEL}}" + "".join(f"  {_pct(c['mean'])}" for c in s["coverage"]),
    ]
    for policy in dict.fromkeys(c["policy"] for c in s["caches"]):
        rows = [c for c in s["caches"] if c["policy"] == policy]
        lines.append(f"{'hit rate ' + policy:<{LABEL}}" + "".join(f"  {_pct(c['mean'])}" for c in rows))
    adaptive = [c for c in s["caches"] if c["policy"] == "adaptive"]
    lines.append(f"{'adaptive swaps per token':<{LABEL}}" + "".join(f"{c['swaps_per_token']:>8.2f}" for c in adaptive))
    for policy in ("static", "adaptive"):
        rows = [c for c in s["caches"] if c["policy"] == policy]
        lines.append(f"{'worker layers, ' + policy:<{LABEL}}" + "".join(f"{c['worker_layers']:>5}/{s['n_layer']:<2}" for c in rows))
    a = s["adapt"]
    lines.append(f"(static: hot set from {s['cache_profile']}"
                 + (", an upper bound" if s["cache_profile"] == "in-sample" else "")
                 + f"; decayed-frequency: half-life {s['decay_half_life_tokens']:g} tokens; optimal: Belady's, knowing the "
                 + "routing ahead, the ceiling of every policy; adaptive: from the static set, "
                 + f"--moe-hot-adapt {a['every']} --moe-hot-adapt-ratio {a['ratio']:g} --moe-hot-adapt-margin {a['margin']:g} "
                 + f"--moe-hot-adapt-noise {a['noise']:g} --moe-hot-adapt-decay {a['decay']:g}; worker layers: those with "
                 + f"{WORKER_MIN_COLD:g} cold selections a token or more, which keep the CPU worker; per layer in --json)")
    return "\n".join(lines)


def populate_parser(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("trace", type=Path, metavar="TRACE", help="a trace written by --moe-trace-out (docs/moe-trace-format.md)")
    a("--profile", type=Path, metavar="OTHER_TRACE",
      help="the static cache's hot set from this trace of the same model (default: TRACE itself, in-sample)")
    a("--half-life", type=float, default=HALF_LIFE, metavar="TOKENS",
      help="half-life of the decayed-frequency cache's counts (default %(default)g)")
    a("--adapt-every", type=int, default=AdaptRule.every, metavar="TOKENS",
      help="the adaptive hot set's updates, as --moe-hot-adapt (default %(default)d)")
    a("--adapt-ratio", type=float, default=AdaptRule.ratio, metavar="R", help="as --moe-hot-adapt-ratio (default %(default)g)")
    a("--adapt-margin", type=float, default=AdaptRule.margin, metavar="M", help="as --moe-hot-adapt-margin (default %(default)g)")
    a("--adapt-noise", type=float, default=AdaptRule.noise, metavar="Z", help="as --moe-hot-adapt-noise (default %(default)g)")
    a("--adapt-decay", type=float, default=AdaptRule.decay, metavar="D", help="as --moe-hot-adapt-decay (default %(default)g)")
    a("--tokens", type=int, metavar="N",
      help="only the first N routed tokens of TRACE, e.g. the length of a benchmark run (llama-perplexity -c 512 --chunks 1 "
           "decodes 512): the adaptive set's warm-up counts for that run; in-sample is then those N tokens (default: all)")
    a("--json", action="store_true", help="print the statistics as JSON, with per-layer values")


def main_trace_stats(args: argparse.Namespace) -> int:
    if args.half_life <= 0:
        raise UsageError(f"--half-life must be positive, not {args.half_life:g}", "e.g. --half-life 32")
    rule = AdaptRule(args.adapt_every, args.adapt_ratio, args.adapt_margin, args.adapt_noise, args.adapt_decay)
    if rule.every < 1 or not rule.ratio >= 1 or not rule.margin >= 0 or not rule.noise >= 0 or not 0 <= rule.decay < 1:
        raise UsageError(f"the adaptive rule {asdict(rule)} is out of range, as the engine would refuse it",
                         "--adapt-every at least 1, --adapt-ratio at least 1, --adapt-margin and --adapt-noise at least 0, "
                         "--adapt-decay from 0 to below 1")
    stats = trace_stats(args.trace, args.profile, args.half_life, rule, args.tokens)
    print(json.dumps(stats, indent=2) if args.json else render_text(stats))
    return 0
