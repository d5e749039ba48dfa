"""scripts/bench-worker-dot.py without a build: its summary and report from runs, and its refusals of bad input. The runs
themselves are real llama-perplexity runs (reports/*-worker-dot)."""

from __future__ import annotations

import subprocess
import sys

from llama_tools import SCRIPTS, load_script

LINE = "llama_moe_worker: 1 threads computed 100 jobs, 800 experts (2.120 GB) in {s} s: {gbs} GB/s"


def row(dot: str, threads: int, gbs: float, ppl: float) -> dict:
    bench = load_script("bench-worker-dot")
    parsed = bench.parse_moe_worker(LINE.format(s=round(2.12 / gbs, 4), gbs=gbs))
    return {"threads": threads, "dot": dot, "rc": 0, "cmd": f"run {dot}", "own_dot": dot == "vnni", "ppl": ppl, "gbs": parsed.gbs,
            "us_per_job": round(1e6 * parsed.seconds / parsed.jobs, 1)}


def test_the_two_dot_products_are_compared_per_thread_count():
    bench = load_script("bench-worker-dot")
    rows = [row("vnni", 1, 8.0, 10.5), row("ggml", 1, 4.0, 10.5), row("vnni", 1, 9.0, 10.5), row("ggml", 1, 5.0, 10.5)]
    cells = bench.summarise(rows)
    assert cells == [{"threads": 1, "vnni": {"gbs": 8.5, "us_per_job": cells[0]["vnni"]["us_per_job"], "runs": 2, "ppl": [10.5]},
                      "ggml": {"gbs": 4.5, "us_per_job": cells[0]["ggml"]["us_per_job"], "runs": 2, "ppl": [10.5]},
                      "ratio": 1.889, "same_ppl": True}]
    assert "| 1 | 8.5 GB/s" in bench.markdown(cells, rows, "t")


def test_a_different_answer_is_shown_and_fails_the_run():
    bench = load_script("bench-worker-dot")
    rows = [row("vnni", 2, 8.0, 10.5), row("ggml", 2, 4.0, 10.6)]
    cells = bench.summarise(rows)
    assert cells[0]["same_ppl"] is False
    assert "| NO |" in bench.markdown(cells, rows, "t")


def test_a_machine_without_the_worker_s_dot_products_is_said():
    bench = load_script("bench-worker-dot")
    rows = [{**row("vnni", 1, 4.0, 10.5), "own_dot": False}, row("ggml", 1, 4.0, 10.5)]
    assert "No run used the worker's own dot products" in bench.markdown(bench.summarise(rows), rows, "t")


def test_missing_inputs_are_named(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPTS / "bench-worker-dot.py", "--bin", tmp_path, "--model", tmp_path / "m.gguf", "--text",
                           tmp_path, "--out", tmp_path / "out"], capture_output=True, text=True)
    assert proc.returncode != 0 and f"llama-perplexity not found at {tmp_path / 'llama-perplexity'}" in proc.stderr
    assert not (tmp_path / "out").exists()
