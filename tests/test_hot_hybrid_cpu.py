"""Patch 0018 in the CPU build: --moe-cold hybrid splits each layer's cold experts into two parts, never the result.

Without a GPU both cold parts run on the CPU; each expert is computed by one of the three parts (hot, the GPU's side, the
CPU's side) and the others' rows are zero, so the perplexity equals that of the model without hot experts. The split
applies to batches below 32 tokens, hence ubatches of 16 here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import llama_tools
import numpy as np
import pytest
from llama_tools import final_ppl

from builder import hot_experts, moe_trace

pytestmark = pytest.mark.slow



SPLIT_LOG = re.compile(r"llama_moe_hot: in batches below 32 tokens the CPU computes (\d+) of the (\d+) cold experts of the split layers "
                       r"\(about (\d+)% of their expected selections, --moe-cold-cpu-share\), and, without a GPU, a second part on the CPU "
                       r"computes the others")


def split(proc: subprocess.CompletedProcess) -> tuple[int, int, int]:
    """(cold experts on the CPU's side, cold experts, the CPU's share in percent) from the load's log."""
    match = SPLIT_LOG.search(proc.stderr)
    assert match, proc.stderr[-3000:]
    return tuple(map(int, match.groups()))


def perplexity(dist: Path, model: Path, text: Path, *args: str) -> subprocess.CompletedProcess:
    return llama_tools.perplexity(dist, model, text, "-b", "64", "-ub", "16", *args)


@pytest.fixture(scope="module")
def profile(cpu_builds, tiny_moe, story, tmp_path_factory) -> tuple[Path, str]:
    """The model's routing on the story (the hot profile), and the perplexity without hot experts."""
    trace = tmp_path_factory.mktemp("trace") / "tiny.moetrace"
    return trace, final_ppl(perplexity(cpu_builds, tiny_moe, story, "--moe-trace-out", str(trace)))


@pytest.mark.parametrize("with_profile", [False, True], ids=["experts-0..n-1", "profile"])
def test_hybrid_cold_experts_give_the_same_perplexity(cpu_builds, tiny_moe, story, profile, with_profile):
    trace, reference = profile
    hot = ["--cpu-moe", "--moe-hot-mib", "1"] + (["--moe-hot-profile", str(trace)] if with_profile else [])
    proc = perplexity(cpu_builds, tiny_moe, story, *hot, "--moe-cold", "hybrid")
    # 1 MiB holds 9 experts of 110 KiB: 4 a layer evenly, without a profile; spread by the profile's selections with one (0058)
    counts = moe_trace.selection_counts(moe_trace.read_trace(trace)) if with_profile else np.zeros((2, 16), dtype=int)
    n_hot = hot_experts.hot_counts(hot_experts.read_layout(tiny_moe), 1, counts if with_profile else None)
    assert f"2 layers, {llama_tools.hot_range(n_hot)} of 16 experts hot per layer" in proc.stderr
    n_cpu, n_cold, percent = split(proc)
    assert (n_cold, percent) == (32 - sum(n_hot.values()), 50) and 0 < n_cpu < n_cold
    # the planning model's copy of the rule (scripts/placement-model.py) splits the same way
    hot = hot_experts.hot_sets(counts, n_hot)
    assert n_cpu == sum(int(hot_experts.cpu_side(counts[layer] if with_profile else None, hot[layer], 16, 0.5).sum()) for layer in (0, 1))
    assert final_ppl(proc) == reference


@pytest.mark.parametrize(("share", "n_cpu"), [("0", 0), ("0.25", 6), ("0.5", 12), ("1", 24)])
def test_the_cpu_takes_its_share_of_the_cold_experts(cpu_builds, tiny_moe, story, profile, share, n_cpu):
    # without a profile the 12 cold experts of each layer count the same: the CPU's side gets the share of them
    _, reference = profile
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "hybrid", "--moe-cold-cpu-share", share)
    assert split(proc) == (n_cpu, 24, round(100 * float(share)))
    assert final_ppl(proc) == reference


@pytest.mark.parametrize("share", ["1.5", "-0.1", "nan"])
def test_a_cpu_share_outside_0_to_1_is_refused(cpu_builds, tiny_moe, story, share):
    proc = perplexity(cpu_builds, tiny_moe, story, "--moe-cold", "hybrid", "--moe-cold-cpu-share", share)
    assert proc.returncode != 0
    assert 'error while handling argument "--moe-cold-cpu-share": must be auto or a share from 0 to 1' in proc.stderr


def test_a_cpu_share_without_the_hybrid_split_is_said_to_have_no_effect(cpu_builds, tiny_moe, story, profile):
    _, reference = profile
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-cold-cpu-share", "0.7")
    assert ("llama_moe_hot: --moe-cold-cpu-share 0.7 has no effect with --moe-cold cpu; it applies to --moe-cold hybrid and "
            "--moe-cold-worker") in proc.stderr
    assert final_ppl(proc) == reference


def test_adaptive_hot_experts_keep_the_hybrid_split_exact(cpu_builds, tiny_moe, story, profile):
    # a swapped-out expert takes the side of the expert that replaced it; a wrong side map would drop or double an expert
    _, reference = profile
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "hybrid", "--moe-hot-adapt", "16")
    assert final_ppl(proc) == reference
    assert "llama_moe_hot: adapt:" in proc.stderr and " 0 swaps" not in proc.stderr


def test_hybrid_cold_experts_need_hot_experts(cpu_builds, tiny_moe, story):
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-cold", "hybrid")
    assert proc.returncode != 0
    assert "computing the cold experts on the GPU (--moe-cold hybrid) requires hot experts (--moe-hot-mib)" in proc.stderr
