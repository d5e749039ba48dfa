"""scripts/bench-cold-cpu.py: the cold bytes a token reads come from the GGUF, and a real llama-bench run of the CPU build
gives the GB/s the report says."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from builder.hot_experts import read_layout
from llama_tools import SCRIPTS, load_script


def test_a_token_reads_experts_used_experts_of_every_moe_layer(tiny_moe):
    bench = load_script("bench-cold-cpu")
    layout = read_layout(tiny_moe)
    used = bench.experts_used(tiny_moe)
    assert 0 < used < layout.n_expert
    assert bench.cold_bytes_per_token(tiny_moe) == used * sum(layout.expert_bytes.values())


def test_a_model_without_experts_is_refused_by_name(tiny_vocab):
    bench = load_script("bench-cold-cpu")
    with pytest.raises(SystemExit, match=f"{tiny_vocab.name} has no expert tensors"):
        bench.cold_bytes_per_token(tiny_vocab)
    with pytest.raises(SystemExit, match="not a MoE model"):
        bench.experts_used(tiny_vocab)


@pytest.mark.slow
def test_the_report_is_tokens_per_second_times_the_cold_bytes(cpu_builds, tiny_moe, tmp_path):
    out = tmp_path / "cold"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "bench-cold-cpu.py"), "--bench", str(cpu_builds / "cpu" / "bin" / "llama-bench"),
                           "--model", str(tiny_moe), "--threads", "1,2", "--tokens", "8", "--reps", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "cold-cpu.json").read_text())
    assert [r["threads"] for r in result["runs"]] == [1, 2]
    for r in result["runs"]:
        assert r["tokens_per_s"] > 0 and r["memory_gb_per_s"] > 0
        assert r["cold_gb_per_s"] == pytest.approx(r["tokens_per_s"] * result["cold_bytes_per_token"] / 1e9)
        assert r["share"] == pytest.approx(r["cold_gb_per_s"] / r["memory_gb_per_s"])
    assert "--moe-route uniform:1" in result["command"]
    default = result["default"]  # without -t: the thread count llama.cpp picks, as llama-bench reports it
    assert default["threads"] >= 1 and default["tokens_per_s"] > 0
    assert default["cold_gb_per_s"] == pytest.approx(default["tokens_per_s"] * result["cold_bytes_per_token"] / 1e9)
    assert (out / "cold-cpu.png").stat().st_size > 0
    md = (out / "cold-cpu.md").read_text()
    assert "| 2 |" in md and f"llama.cpp's default (no `-t`): {default['threads']} threads" in md


def test_bad_thread_counts_are_refused(tiny_moe, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPTS / "bench-cold-cpu.py"), "--bench", "llama-bench", "--model", str(tiny_moe),
                           "--threads", "0,2", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "--threads 0,2" in proc.stderr
