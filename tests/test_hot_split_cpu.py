"""Patch 0003 in the CPU build: hot experts change where experts are computed, never the result."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from llama_tools import final_ppl, hot_range, hot_sets_printed, perplexity

from builder import hot_experts, moe_trace
from builder.synth_model import ModelSpec, resolve_vocab, write_moe_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def profile(cpu_builds, tiny_moe, story, tmp_path_factory) -> tuple[Path, str]:
    """The model's routing on the story (the hot profile), and the perplexity without hot experts."""
    trace = tmp_path_factory.mktemp("trace") / "tiny.moetrace"
    return trace, final_ppl(perplexity(cpu_builds, tiny_moe, story, "--moe-trace-out", str(trace)))


def hot_sets_logged(proc: subprocess.CompletedProcess) -> dict[int, list[int]]:
    """The hot sets a run with -v printed."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    return hot_sets_printed(proc.stderr)


def test_a_hot_cold_split_gives_the_same_perplexity(cpu_builds, tiny_moe, story, profile):
    trace, reference = profile
    # 1 MiB over the model's two MoE layers: 9 experts of 110 KiB, spread by the profile (0058), 4 a layer evenly
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-profile", str(trace))
    n_hot = hot_experts.hot_counts(hot_experts.read_layout(tiny_moe), 1, moe_trace.selection_counts(moe_trace.read_trace(trace)))
    assert f"2 layers, {hot_range(n_hot)} of 16 experts hot per layer" in proc.stderr and sum(n_hot.values()) == 9
    assert final_ppl(proc) == reference
    even = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-profile", str(trace),
                      env={"LLAMA_MOE_HOT_EVEN": "1"})
    assert "2 layers, 4 of 16 experts hot per layer" in even.stderr
    assert final_ppl(even) == reference


def test_a_profile_spreads_the_budget_where_its_layers_select_more_experts(cpu_builds, tiny_moe, story, profile, tmp_path):
    # layer 0 selects experts 0-3 at every token, layer 1 all 16 alike: 2 MiB (18 experts) gives layer 1 what layer 0
    # does not use, where evenly each would keep 9
    _, reference = profile
    ids = np.array([[[0, 1, 2, 3], [(4 * t + j) % 16 for j in range(4)]] for t in range(64)], dtype="<i2")
    trace = tmp_path / "skewed.moetrace"
    moe_trace.write_trace(moe_trace.Trace(2, 16, 4, ids), trace)
    layout = hot_experts.read_layout(tiny_moe)
    spread = hot_experts.hot_counts(layout, 2, moe_trace.selection_counts(moe_trace.read_trace(trace)))
    assert spread == {0: 4, 1: 14} and hot_experts.hot_counts(layout, 2) == {0: 9, 1: 9}
    args = ("--cpu-moe", "--moe-hot-mib", "2", "--moe-hot-profile", str(trace), "-v")
    proc = perplexity(cpu_builds, tiny_moe, story, *args)
    assert hot_sets_logged(proc) == {0: [0, 1, 2, 3], 1: list(range(14))}
    assert "2 layers, 4-14 of 16 experts hot per layer" in proc.stderr and final_ppl(proc) == reference
    even = perplexity(cpu_builds, tiny_moe, story, *args, env={"LLAMA_MOE_HOT_EVEN": "1"})
    assert hot_sets_logged(even) == {0: list(range(9)), 1: list(range(9))}
    assert final_ppl(even) == reference


def test_a_profile_of_another_model_is_refused(cpu_builds, pinned_tree, story, profile, tmp_path):
    trace, _ = profile
    other = tmp_path / "three-layers.gguf"
    write_moe_model(other, ModelSpec(arch="qwen3moe", n_layer=3), resolve_vocab(None, "qwen3moe", pinned_tree))
    proc = perplexity(cpu_builds, other, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-profile", str(trace))
    assert proc.returncode != 0
    assert (f"MoE hot profile {trace}: the trace has 2 layers and 16 experts, the model 3 layers and 16 experts; "
            "record a trace of this model with --moe-trace-out") in proc.stderr


def test_cold_experts_on_the_gpu_are_refused_without_a_cuda_gpu(cpu_builds, tiny_moe, story):
    # patch 0005: the CPU build's layers run on the CPU, which cannot read the host experts "in place" as a GPU
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "gpu")
    assert proc.returncode != 0
    assert ("MoE cold experts on the GPU (--moe-cold gpu): layer 0 runs on CPU, which is not a CUDA GPU; "
            "use --moe-cold cpu") in proc.stderr


def test_cold_experts_on_the_gpu_need_hot_experts(cpu_builds, tiny_moe, story):
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-cold", "gpu")
    assert proc.returncode != 0
    assert "computing the cold experts on the GPU (--moe-cold gpu) requires hot experts (--moe-hot-mib)" in proc.stderr


def test_the_cold_placement_is_checked_by_the_argument_parser(cpu_builds, tiny_moe, story):
    proc = perplexity(cpu_builds, tiny_moe, story, "--moe-cold", "disk")
    assert proc.returncode != 0
    assert "--moe-cold" in proc.stderr and "invalid value" in proc.stderr


def test_an_automatic_budget_keeps_no_hot_experts_without_a_gpu(cpu_builds, tiny_moe, story, profile):
    # patch 0013: auto fills what a GPU has free; a machine without one keeps no copies, and the result is unchanged
    _, reference = profile
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "auto")
    assert "llama_moe_hot: --moe-hot-mib auto: no GPU to keep hot experts on, hot experts disabled" in proc.stderr
    assert "experts hot per layer" not in proc.stderr
    assert final_ppl(proc) == reference


@pytest.mark.parametrize("value", ["autox", "-1", "12MiB", ""])
def test_a_budget_neither_a_number_nor_auto_is_refused(cpu_builds, tiny_moe, story, value):
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", value)
    assert proc.returncode != 0
    assert "--moe-hot-mib" in proc.stderr and "invalid value" in proc.stderr


def test_llama_bench_takes_an_automatic_budget(cpu_builds, tiny_moe):
    bench = [cpu_builds / "cpu" / "bin" / "llama-bench", "-m", tiny_moe, "-p", "0", "-n", "4", "-r", "1", "-t", "2", "-o", "jsonl"]
    proc = subprocess.run([*bench, "--moe-hot-mib", "0,auto"], check=False, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [json.loads(line)["moe_hot_mib"] for line in proc.stdout.splitlines()] == [0, -1]  # -1: auto
    bad = subprocess.run([*bench, "--moe-hot-mib", "auto2"], check=False, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert bad.returncode != 0
