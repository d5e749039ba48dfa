"""`trace-flatten`: a less skewed variant of a routing trace, for cache studies at a published skew.

Each routed token-layer row of the trace is, with probability p, replaced by `n_expert_used`
distinct experts drawn uniformly (seeded; the same rows are replaced at every p below a row's draw,
so the skew falls steadily as p grows). p is found by bisection so that the top `at` share of each
layer's experts covers `coverage` of its selections, averaged over the layers (trace-stats' figure).
The output holds the routed tokens only (`moe_trace.routed_tokens`), in one record.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import log
from .errors import UsageError
from .moe_trace import Trace, read_routed, selection_counts, write_trace
from .trace_stats import capacity, coverage

BISECTION_STEPS = 30


def mean_coverage(trace: Trace, at: float) -> float:
    return float(coverage(selection_counts(trace), capacity(at, trace.n_expert)).mean())


def mixed(trace: Trace, p: float, draws: np.ndarray, uniform_rows: np.ndarray) -> Trace:
    """`trace` with the rows whose draw is below `p` replaced by `uniform_rows`."""
    replace = draws < p
    return Trace(trace.n_layer, trace.n_expert, trace.n_expert_used, np.where(replace[..., None], uniform_rows, trace.ids))


def flatten(trace: Trace, target: float, at: float, seed: int = 0) -> tuple[Trace, float]:
    """The flattened trace whose mean top-`at` coverage is closest to `target`, and its p."""
    rng = np.random.default_rng(seed)
    n_tokens, n_layer, k = trace.ids.shape
    draws = rng.random((n_tokens, n_layer))
    uniform_rows = np.argsort(rng.random((n_tokens, n_layer, trace.n_expert)), axis=2)[..., :k].astype(trace.ids.dtype)
    original, flattest = mean_coverage(trace, at), mean_coverage(mixed(trace, 1.0, draws, uniform_rows), at)
    if not flattest <= target <= original:
        raise UsageError(f"coverage {target:.3f} at {at:g} of the experts is outside what mixing can give for this trace: "
                         f"{flattest:.3f} (all uniform) to {original:.3f} (as recorded)",
                         "flattening only lowers the skew; pick a --coverage between those")
    low, high = 0.0, 1.0  # coverage(low) >= target >= coverage(high)
    for _ in range(BISECTION_STEPS):
        mid = (low + high) / 2
        if mean_coverage(mixed(trace, mid, draws, uniform_rows), at) >= target:
            low = mid
        else:
            high = mid
    best = min((low, high), key=lambda p: abs(mean_coverage(mixed(trace, p, draws, uniform_rows), at) - target))
    return mixed(trace, best, draws, uniform_rows), best


def populate_parser(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("trace", type=Path, metavar="TRACE", help="a trace written by --moe-trace-out")
    a("-o", "--output", type=Path, required=True, metavar="OUT", help="the flattened trace to write")
    a("--coverage", type=float, default=0.9, help="share of selections to cover (default %(default)g)")
    a("--at", type=float, default=0.5, metavar="SHARE",
      help="by this share of each layer's most selected experts (default %(default)g)")
    a("--seed", type=int, default=0, help="seed of the uniform draws (default %(default)s)")


def main_trace_flatten(args: argparse.Namespace) -> int:
    if not 0 < args.coverage <= 1 or not 0 < args.at <= 1:
        raise UsageError(f"--coverage {args.coverage:g} and --at {args.at:g} must both be in (0, 1]",
                         "e.g. --coverage 0.9 --at 0.5 (Qwen3-30B-A3B's published skew)")
    trace = read_routed(args.trace)
    flat, p = flatten(trace, args.coverage, args.at, args.seed)
    write_trace(flat, args.output)
    log.info(f"{args.output}: {flat.n_tokens} tokens, {100 * p:.1f}% of the rows uniform; "
             f"top {100 * args.at:g}% of experts cover {100 * mean_coverage(flat, args.at):.1f}% "
             f"(recorded: {100 * mean_coverage(trace, args.at):.1f}%)")
    return 0
