"""Summaries of real llama-bench output: medians per build, placement and test, and ratios."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.bench import bench_records, ratios, summarize

DATA = Path(__file__).parent / "data" / "bench"


def test_alternating_runs_of_two_builds_give_medians_and_ratios():
    # six rounds of the fork and upstream on the H200 (reports/2026-11-29-flag-off-speed)
    summaries = summarize(bench_records((DATA / "flag-off-h200.jsonl").read_text()))
    by_key = {(s.build, s.test): s for s in summaries}
    upstream = by_key[("upstream", "tg128")]
    assert (upstream.runs, upstream.median_ts) == (6, pytest.approx(544.7, abs=0.05))
    fork_builds = {s.build for s in summaries} - {"upstream"}
    assert len(fork_builds) == 1
    result = ratios(summaries, "upstream")[fork_builds.pop()]
    assert result == {"pp512": pytest.approx(0.999, abs=5e-4), "tg128": pytest.approx(0.995, abs=5e-4)}


def test_a_hot_budget_sweep_is_summarised_per_placement():
    # llama-bench -ncmoe 4 --moe-hot-mib 0,2 of the fork on a CPU, pp16 and tg4
    summaries = summarize(bench_records((DATA / "hot-sweep-cpu.jsonl").read_text()))
    assert [(s.placement, s.test) for s in summaries] == [
        ("-ncmoe 4", "pp16"), ("-ncmoe 4", "tg4"), ("-ncmoe 4 --moe-hot-mib 2", "pp16"), ("-ncmoe 4 --moe-hot-mib 2", "tg4"),
    ]
