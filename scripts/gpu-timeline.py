#!/usr/bin/env python3
"""Sum up a GPU timeline written by scripts/gpu-timeline.c (a CUPTI injection library): where a decode's GPU time goes.

    CUDA_INJECTION64_PATH=libgpu-timeline.so GPU_TIMELINE_OUT=TIMELINE llama-perplexity ...
    scripts/gpu-timeline.py TIMELINE --tokens N [--json OUT.json]

What it counts: builder/report/gpu_timeline.py. scripts/bench-placements.py --timeline does both for each run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.errors import UsageError  # noqa: E402
from builder.report.gpu_timeline import render, summarize  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("timeline", type=Path)
    parser.add_argument("--tokens", type=int, required=True, help="the tokens the run decoded")
    parser.add_argument("--long-gap-us", type=float, default=1000.0,
                        help="gaps at least this long are host work outside the decode, left out (default 1000)")
    parser.add_argument("--top", type=int, default=20, help="kernels in the table (default 20)")
    parser.add_argument("--json", type=Path, help="write the whole summary here too")
    args = parser.parse_args()
    if args.tokens < 1:
        parser.error(f"--tokens {args.tokens}: give the number of tokens the run decoded (1 or more)")
    if not args.timeline.is_file():
        parser.error(f"{args.timeline}: no such file: pass the GPU_TIMELINE_OUT file of a finished run")
    try:
        summary = summarize(args.timeline, args.tokens, args.long_gap_us)
    except UsageError as e:
        sys.exit(f"error: {e}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(render(summary, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
