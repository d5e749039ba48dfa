#!/usr/bin/env python3
"""Summarise test-backend-ops perf lines that a label precedes (device-run.sh's hot-kernels.txt and flag-off-kernels.txt:
`LABEL: OP(VARS): N runs - X us/run - ...`, the label with `round N` in it) into NAME.json, NAME.md and NAME.png beside
NAME.txt: the median µs a run of each case under each setting (the label without its round), and each median against
the first setting's.

    scripts/summarize-kernels.py reports/DIR/hot-kernels.txt
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

LINE = re.compile(r"^(?P<label>.*?):\s+(?P<case>[A-Z0-9_]+\(.*?\)):\s+(?P<runs>\d+) runs -\s+(?P<us>[\d.]+) us/run")
ROUND = re.compile(r"\s*\bround \d+\b\s*")


def read_runs(text: str) -> dict[str, dict[str, list[float]]]:
    """{setting: {case: [µs a run, one a round]}}, settings and cases in the order they first appear."""
    runs: dict[str, dict[str, list[float]]] = {}
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m is None:
            continue
        setting = ROUND.sub(" ", m["label"]).strip() or "as built"
        runs.setdefault(setting, {}).setdefault(m["case"], []).append(float(m["us"]))
    return runs


def summarize(runs: dict[str, dict[str, list[float]]]) -> dict:
    if not runs:
        raise SystemExit("no test-backend-ops perf lines (`LABEL: OP(VARS): N runs - X us/run`) in the input: is it the "
                         "file device-run.sh's hot-kernels or flag-off stage wrote?")
    settings = list(runs)
    cases = list(dict.fromkeys(case for per_case in runs.values() for case in per_case))
    median = {s: {c: statistics.median(runs[s][c]) for c in cases if c in runs[s]} for s in settings}
    first = settings[0]
    ratio = {s: {c: round(us / median[first][c], 3) for c, us in median[s].items() if c in median[first]} for s in settings[1:]}
    return {"schema": 1, "settings": settings, "cases": cases, "runs": runs,
            "median_us": {s: {c: round(us, 2) for c, us in m.items()} for s, m in median.items()}, "vs_first": ratio}


def markdown(summary: dict) -> str:
    settings, first = summary["settings"], summary["settings"][0]
    lines = ["| case | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for case in summary["cases"]:
        cells = []
        for s in settings:
            us = summary["median_us"][s].get(case)
            ratio = summary["vs_first"].get(s, {}).get(case)
            cells.append("" if us is None else f"{us:.2f}" + (f" ({ratio:.3f})" if ratio is not None else ""))
        lines.append(f"| `{case}` | " + " | ".join(cells) + " |")
    n_rounds = max(len(v) for per_case in summary["runs"].values() for v in per_case.values())
    return "\n".join([f"Median µs a run over {n_rounds} round(s); in brackets, against `{first}`.", "", *lines]) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases, settings = summary["cases"], summary["settings"]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(cases) * len(settings) + 1.5))
    height = 0.8 / len(settings)
    for i, s in enumerate(settings):
        ys = [k + i * height for k, c in enumerate(cases) if c in summary["median_us"][s]]
        ax.barh(ys, [summary["median_us"][s][c] for c in cases if c in summary["median_us"][s]], height, label=s)
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(cases))], [c.split(",amax")[0][:90] for c in cases], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("µs a run (median)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("txt", type=Path)
    args = parser.parse_args()
    summary = summarize(read_runs(args.txt.read_text()))
    args.txt.with_suffix(".json").write_text(json.dumps({"source": args.txt.name, **summary}, indent=2) + "\n")
    args.txt.with_suffix(".md").write_text(markdown(summary))
    plot(summary, args.txt.with_suffix(".png"))
    print(args.txt.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
