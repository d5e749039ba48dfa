"""Summaries of test-backend-ops output, on outputs recorded from real runs (tests/data)."""

from __future__ import annotations

from pathlib import Path

from builder.test_ops import parse_output

DATA = Path(__file__).parent / "data"


def test_passing_cpu_run():
    [cpu] = parse_output((DATA / "test-backend-ops-cpu-skip.log").read_text())
    assert (cpu.name, cpu.passed, cpu.failed, cpu.skipped) == ("CPU", 235, 0, "")


def test_failing_run_lists_each_failed_case():
    [cpu] = parse_output((DATA / "test-backend-ops-cpu-failing.log").read_text())
    assert (cpu.passed, cpu.failed) == (50, 185)  # its own summary: "50/235 tests passed"
    assert cpu.failures[0].startswith("MUL_MAT_ID_SKIP(type_a=f32,n_mats=16,n_used=4,b=0,glu=0,m=64,n=1,k=256,skip_pct=50)")


def test_upstream_cpu_only_run_tests_nothing():
    [cpu] = parse_output((DATA / "test-backend-ops-upstream-cpu.log").read_text())
    assert cpu.passed + cpu.failed == 0 and cpu.skipped == "Skipping CPU backend"
