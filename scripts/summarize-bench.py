#!/usr/bin/env python3
"""Summarise llama-bench jsonl (e.g. from alternating runs) into NAME.json and NAME.md beside NAME.jsonl.

    scripts/summarize-bench.py reports/DIR/bench.jsonl --baseline upstream
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.bench import bench_records, ratios, summarize  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("--baseline", default="upstream", help="build_commit of the baseline (default: %(default)s)")
    args = parser.parse_args()
    records = bench_records(args.jsonl.read_text())
    summaries = summarize(records)
    result = {
        "schema": 1,
        "source": args.jsonl.name,
        "baseline": args.baseline,
        "reps_per_run": len(records[0].get("samples_ts", [])),
        "summaries": [asdict(s) for s in summaries],
        "ratios": ratios(summaries, args.baseline),
    }
    out = args.jsonl.with_suffix(".json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| build | placement | test | median t/s | min | max | runs |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {s.build} | {s.placement or 'default'} | {s.test} | {s.median_ts:.1f} | {s.min_ts:.1f} | {s.max_ts:.1f} | {s.runs} |"
              for s in summaries]
    lines += ["", "| build | placement and test | median ÷ baseline |", "|---|---|---|"]
    lines += [f"| {b} | {t} | {r:.3f} |" for b, tests in result["ratios"].items() for t, r in tests.items()]
    args.jsonl.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
