#!/usr/bin/env python3
"""The replayed trace and the static profile of one routing for scripts/bench-placements.py.

    scripts/make-bench-traces.py TRACE --layers 24 --replay-tokens 1024 -o DIR/NAME [--profile OTHER]

The routed tokens of TRACE (a --moe-trace-out file) are split: the first --replay-tokens are
replayed (DIR/NAME-replay.bin); the profile is OTHER's routed tokens if given (a trace of other
text), else the rest of TRACE (DIR/NAME-profile.bin), so the profile never saw the replayed
tokens. With --layers, both are tiled to that many layers (builder.moe_trace.tile_layers, the same
renaming for both). Prints the distinct experts per layer per 32 tokens of the replay as JSON.

--predictions P... takes traces of the same tokens as TRACE that rank experts ahead of the router
(scripts/predict-experts.py's PREDICTOR-TEXT.moetrace) and writes the replayed tokens' part of each,
tiled like the replay, to DIR/NAME-STEM.bin (STEM: P's file name without its suffixes, .xz included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder import moe_trace as mt  # noqa: E402


def aligned(ranking: mt.Trace, path: Path, trace: mt.Trace, trace_path: Path) -> mt.Trace:
    """`ranking` if it ranks the experts of `trace`'s tokens and layers; a TraceError naming both shapes if not."""
    if (ranking.n_tokens, ranking.n_layer, ranking.n_expert) != (trace.n_tokens, trace.n_layer, trace.n_expert):
        raise mt.TraceError(f"{path}: {ranking.n_tokens} tokens x {ranking.n_layer} layers of {ranking.n_expert} experts, "
                            f"{trace_path}: {trace.n_tokens} x {trace.n_layer} of {trace.n_expert}; a prediction must rank the replayed trace's own tokens",
                            "pass the routing and the predictions that scripts/predict-experts.py wrote in one run")
    return ranking


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace", type=Path)
    p.add_argument("-o", "--out", required=True, help="prefix of the two files written")
    p.add_argument("--profile", type=Path, help="a trace of other text for the profile (default: the rest of TRACE)")
    p.add_argument("--layers", type=int, help="tile to this many layers")
    p.add_argument("--replay-tokens", type=int, default=1024)
    p.add_argument("--predictions", type=Path, nargs="+", default=[], help="rankings of TRACE's tokens to replay beside it")
    args = p.parse_args()

    try:
        trace = mt.read_trace(args.trace)
        predictions = {path: aligned(mt.read_trace(path), path, trace, args.trace) for path in args.predictions}
    except mt.TraceError as exc:
        sys.exit(f"error: {exc}")
    routed = mt.routed_tokens(trace)
    replay = mt.take_tokens(routed, 0, args.replay_tokens)
    if args.profile:
        profile = mt.routed_tokens(mt.read_trace(args.profile))
    else:
        profile = mt.take_tokens(routed, args.replay_tokens, routed.n_tokens)
    if replay.n_tokens < args.replay_tokens or profile.n_tokens == 0:
        sys.exit(f"error: {args.trace}: {routed.n_tokens} routed tokens, too few for {args.replay_tokens} replayed and a profile")
    if args.layers:
        replay, profile = (mt.tile_layers(t, args.layers) for t in (replay, profile))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    mt.write_trace(replay, Path(f"{args.out}-replay.bin"))
    mt.write_trace(profile, Path(f"{args.out}-profile.bin"))
    keep = mt.routed_mask(trace)
    for path, ranking in predictions.items():
        ranked = mt.take_tokens(mt.Trace(ranking.n_layer, ranking.n_expert, ranking.n_expert_used, ranking.ids[keep]), 0, replay.n_tokens)
        mt.write_trace(mt.tile_layers(ranked, args.layers) if args.layers else ranked, Path(f"{args.out}-{mt.trace_stem(path)}.bin"))
    distinct = mt.distinct_experts_per_window(replay)
    print(json.dumps({"trace": str(args.trace), "replay_tokens": replay.n_tokens, "profile_tokens": profile.n_tokens,
                      "layers": replay.n_layer, "distinct_per_32": round(sum(distinct) / len(distinct), 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
