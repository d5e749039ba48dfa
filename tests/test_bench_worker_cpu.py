"""scripts/bench-worker-cpu.py without a build: its summary and report from runs, and its refusals of bad input. Its runs
are real llama-perplexity runs (reports/2026-12-04-worker-prefetch-on-the-cpu)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from llama_tools import SCRIPTS, load_script

LINE = "llama_moe_worker: 1 threads computed 100 jobs, 800 experts (2.120 GB) in {s} s: {gbs} GB/s"
PHASES = ("llama_moe_worker: a job's phases (input / gate and up / their product / down), us: thread 0 worked 1.0 / "
          "{gate_up} / 1.0 / 2.0, waited for the others 0.0 / 0.0 / 0.0 / 0.0")


def row(build: str, threads: int, gbs: float, ppl: float, gate_up: float = 10.0) -> dict:
    bench = load_script("bench-worker-cpu")
    parsed = bench.parse_moe_worker(LINE.format(s=round(2.12 / gbs, 4), gbs=gbs) + "\n" + PHASES.format(gate_up=gate_up))
    return {"build": build, "threads": threads, "rc": 0, "cmd": f"run {build}", "ppl": ppl, "gbs": parsed.gbs,
            "us_per_job": round(1e6 * parsed.seconds / parsed.jobs, 1), "phase_us": parsed.phase_us}


def test_the_builds_are_compared_per_thread_count_against_the_first():
    bench = load_script("bench-worker-cpu")
    rows = [row("before", 1, 4.0, 10.5, 20.0), row("after", 1, 8.0, 10.5, 11.0), row("before", 1, 5.0, 10.5, 30.0),
            row("after", 1, 9.0, 10.5, 12.0), row("before", 1, 4.5, 10.5, 100.0), row("after", 1, 8.5, 10.5, 13.0)]
    [cell] = bench.summarise(rows, ["before", "after"])
    assert (cell["before"]["gbs"], cell["after"]["gbs"], cell["after/before"], cell["same_ppl"]) == (4.5, 8.5, 1.889, True)
    text = bench.markdown([cell], rows, ["before", "after"], "t")
    assert "| 1 | 4.5 GB/s" in text
    # each build's phases, the medians of its rounds
    assert "| 1 | 1.0 / 30.0 / 1.0 / 2.0 | 1.0 / 12.0 / 1.0 / 2.0 |" in text


def test_the_median_of_an_even_number_of_rounds_is_shown_rounded():
    # the mean of the middle two: 9.1 and 9.7 made 9.399999999999999 in a report before
    bench = load_script("bench-worker-cpu")
    rows = [row("before", 1, gbs, 10.5) for gbs in (8.3, 9.1, 9.7, 9.9)]
    [cell] = bench.summarise(rows, ["before"])
    assert cell["before"]["gbs"] == 9.4
    assert "| 1 | 9.4 GB/s, " in bench.markdown([cell], rows, ["before"], "t")


def test_a_tool_without_the_phases_line_has_none_to_show():
    bench = load_script("bench-worker-cpu")
    rows = [{**row("before", 1, 4.0, 10.5), "phase_us": []}, row("after", 1, 8.0, 10.5)]
    cells = bench.summarise(rows, ["before", "after"])
    assert "phase_us" not in cells[0]["before"]
    assert "| 1 | not printed | 1.0 / 10.0 / 1.0 / 2.0 |" in bench.markdown(cells, rows, ["before", "after"], "t")


def test_a_different_answer_and_a_failed_run_are_shown():
    bench = load_script("bench-worker-cpu")
    rows = [row("before", 2, 8.0, 10.5), row("after", 2, 4.0, 10.6), {"build": "after", "threads": 2, "rc": 1, "cmd": "run after"}]
    cells = bench.summarise(rows, ["before", "after"])
    assert cells[0]["same_ppl"] is False and cells[0]["after"]["runs"] == 1
    text = bench.markdown(cells, rows, ["before", "after"], "t")
    assert "| NO |" in text and "1 runs failed or computed nothing on the worker" in text


@pytest.mark.parametrize("builds, message", [
    (["after"], "--build 'after': give NAME=BIN_DIR, e.g. --build after=dist/cpu/bin"),
    (["a=x", "a=y"], "--build a given twice: give each build its own name"),
    (["a=NOWHERE"], "build a: llama-perplexity not found in NOWHERE"),
])
def test_bad_builds_are_named(tmp_path, builds, message):
    args = [a for b in builds for a in ("--build", b.replace("NOWHERE", str(tmp_path)))]
    proc = subprocess.run([sys.executable, SCRIPTS / "bench-worker-cpu.py", *args, "--model", tmp_path / "m.gguf", "--text", tmp_path,
                           "--out", tmp_path / "out"], capture_output=True, text=True)
    assert proc.returncode != 0 and message.replace("NOWHERE", str(tmp_path)) in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_build_s_environment_is_its_own():
    bench = load_script("bench-worker-cpu")
    builds = {"l2": SCRIPTS, "l1": SCRIPTS}
    envs = bench.parse_envs(["l1:LLAMA_MOE_WORKER_PREFETCH=l1", "l1:CUDA_VISIBLE_DEVICES="], builds)
    assert envs == {"l2": {}, "l1": {"LLAMA_MOE_WORKER_PREFETCH": "l1", "CUDA_VISIBLE_DEVICES": ""}}


@pytest.mark.parametrize("env, message", [
    ("l1=LLAMA_MOE_WORKER_PREFETCH=l1", "--env 'l1=LLAMA_MOE_WORKER_PREFETCH=l1': give NAME:KEY=VALUE"),
    ("l1:LLAMA_MOE_WORKER_PREFETCH", "give NAME:KEY=VALUE, e.g. --env l1:LLAMA_MOE_WORKER_PREFETCH=l1"),
    ("l3:K=1", "--env 'l3:K=1': no --build is named 'l3'; name one of l2, l1"),
])
def test_bad_environments_are_named(tmp_path, env, message):
    (tmp_path / "llama-perplexity").touch()
    proc = subprocess.run([sys.executable, SCRIPTS / "bench-worker-cpu.py", "--build", f"l2={tmp_path}", "--build", f"l1={tmp_path}",
                           "--env", env, "--model", tmp_path / "m.gguf", "--text", tmp_path, "--out", tmp_path / "out"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--hot-share", "1", "--hot-share 1.0: give a share of the expert bytes from 0 to below 1, e.g. 0.875"),
    ("--hot-share", "-0.1", "--hot-share -0.1: give a share"),
    ("--cpu-share", "0", "--cpu-share 0.0: give the worker's share of the cold selections, above 0 up to 1, e.g. 0.5"),
    ("--cpu-share", "nan", "--cpu-share nan: give the worker's share"),
])
def test_bad_shares_are_named(tmp_path, flag, value, message):
    (tmp_path / "llama-perplexity").touch()
    proc = subprocess.run([sys.executable, SCRIPTS / "bench-worker-cpu.py", "--build", f"a={tmp_path}", flag, value,
                           "--model", tmp_path / "m.gguf", "--text", tmp_path, "--out", tmp_path / "out"], capture_output=True, text=True)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_runs_take_the_hot_budget_and_the_worker_s_share():
    bench = load_script("bench-worker-cpu")
    args = argparse.Namespace(model="m.gguf", text="t.txt", ctx=128, hot_mib=2266, cpu_share=0.5)
    cmd = bench.command(SCRIPTS, args, 2)
    assert cmd[cmd.index("--moe-hot-mib") + 1] == "2266" and cmd[cmd.index("--moe-cold-cpu-share") + 1] == "0.5"
    assert cmd[cmd.index("--moe-cold-worker") + 1] == "2"
