"""Summaries of test-backend-ops output, on outputs recorded from real runs (tests/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.__main__ import main
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


@pytest.mark.slow
@pytest.mark.network
def test_skip_cases_pass_on_the_cpu_build(shared_cache, capsys):
    """test-ops on the real CPU build: our MUL_MAT_ID_SKIP, MUL_MAT_ID_HOT and MOE_HOST_SEND cases, CPU against its reference mode."""
    assert main(["test-ops", "--variant", "cpu", "--json", "--cache-dir", str(shared_cache)]) == 0
    report = json.loads(capsys.readouterr().out)
    [cpu] = report["backends"]
    assert cpu["name"] == "CPU" and cpu["failed"] == 0 and cpu["passed"] >= 237 + 61 + 15  # MUL_MAT_ID_SKIP, MUL_MAT_ID_HOT (24 of them with skipped ids), MOE_HOST_SEND


@pytest.mark.slow
@pytest.mark.network
def test_hot_perf_case_times_the_hot_product_alone_on_the_cpu_build(shared_cache):
    """0055's perf cases: in perf mode a MUL_MAT_ID_HOT case's graph is the hot product alone, with no reference experts
    to fill (before, filling them read a tensor perf mode has not got and test-backend-ops crashed)."""
    params = "n_hot=128,.*m=2048,n=1,"
    assert main(["test-ops", "--variant", "cpu", "--mode", "perf", "-o", "MUL_MAT_ID_HOT", "-p", params,
                 "--cache-dir", str(shared_cache)]) == 0
    timed = [line for line in (shared_cache / "build" / "cpu" / "test-ops.log").read_text().splitlines() if "us/run" in line]
    assert len(timed) == 1 and timed[0].strip().startswith("MUL_MAT_ID_HOT(type_a=q4_K,n_mats=128,n_hot=128,n_used=8,b=0,glu=0,m=2048,n=1,k=768")
    # one product's flops a run: 2 * m * k * n_used
    assert "25.17 MFLOP/run" in timed[0]
