#!/usr/bin/env python3
"""The decode bound of cold experts read in place by the GPU (--moe-cold gpu), per budget, from traces.

    scripts/placement-bound.py --replay R.bin --profile P.bin --expert-mib 2.53 --all-gpu-ts 520 \\
        --link-gbs 44 [--tokens 512] [--budgets 25,50,75] [--measured 25=165.6 ...]

Per token: the time all on the GPU takes, plus the bytes of the cold experts it selects at the bus's
zero-copy rate (shared/ENGINE-FACTS.md: 44 GB/s for one expert on the H200). The hot sets are the
static profile's (`--moe-hot-profile P`: its most selected experts per layer, as the tools pick them),
the selections are the first --tokens of the replayed trace. The bound leaves out what the split adds
(its extra kernels per layer) and any overlap with the CPU; `--measured` prints the share reached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder import hot_experts, moe_trace  # noqa: E402

MB_PER_MIB = 1.048576


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replay", type=Path, required=True)
    p.add_argument("--profile", type=Path, required=True)
    p.add_argument("--expert-mib", type=float, required=True, help="bytes of one expert's gate+up+down slices, MiB")
    p.add_argument("--all-gpu-ts", type=float, required=True, help="decode tokens/s with everything on the GPU")
    p.add_argument("--link-gbs", type=float, default=44.0)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--budgets", default="25,50,75", help="percent of each layer's experts hot")
    p.add_argument("--measured", nargs="*", default=[], metavar="PCT=TS")
    args = p.parse_args()

    replay = moe_trace.take_tokens(moe_trace.read_trace(args.replay), 0, args.tokens)
    profile_counts = moe_trace.selection_counts(moe_trace.read_trace(args.profile))
    replay_counts = moe_trace.selection_counts(replay)
    measured = {int(k): float(v) for k, v in (m.split("=") for m in args.measured)}
    for pct in (int(b) for b in args.budgets.split(",")):
        n_hot = {layer: replay.n_expert * pct // 100 for layer in range(replay.n_layer)}
        rates = hot_experts.hit_rates(replay_counts, hot_experts.hot_sets(profile_counts, n_hot))
        cold = sum((1 - r) * replay_counts[layer].sum() for layer, r in enumerate(rates) if r is not None) / replay.n_tokens
        hit = 1 - cold * replay.n_tokens / replay_counts.sum()
        ms = 1000 / args.all_gpu_ts + cold * args.expert_mib * MB_PER_MIB / args.link_gbs
        line = f"{pct}%: hit {hit:.3f}, cold experts per token {cold:.1f}, bound {1000 / ms:.0f} tokens/s"
        if pct in measured:
            line += f", measured {measured[pct]} ({measured[pct] * ms / 1000:.2f} of the bound)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
