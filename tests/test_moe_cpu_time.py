"""Patch 0019 in the CPU build: the performance summary's "moe CPU compute" line, the CPU's time and the cold experts
it read, with --moe-hot-stats.

The bytes are checked against the routing trace of the same run: per ubatch and layer, the distinct cold experts
selected times the size of one expert. In a build without a GPU every node is the CPU's, so its time is the whole
graphs': positive and at most the time since the model was loaded.
"""

from __future__ import annotations

import re
from pathlib import Path

import llama_tools
import numpy as np
import pytest

from builder import hot_experts, moe_trace
from builder.report.parse import ParseError, parse_moe_cpu

pytestmark = pytest.mark.slow

UBATCH = 16
N_HOT = 4  # --moe-hot-mib 1 keeps 4 of the tiny model's 16 experts per layer hot, experts 0..3 without a profile
LOAD_MS = re.compile(r"load time =\s*([\d.]+) ms")
TOTAL_MS = re.compile(r"total time =\s*([\d.]+) ms")


def perplexity(dist: Path, model: Path, text: Path, trace: Path, *args: str):
    """Two chunks of 64 tokens in ubatches of UBATCH, traced; without the warmup decode, so the trace is those ubatches."""
    return llama_tools.perplexity(dist, model, text, "-b", "64", "-ub", str(UBATCH), "--cpu-moe", "--moe-hot-mib", "1",
                                  "--moe-trace-out", str(trace), "--no-warmup", *args)


def cold_mib(model: Path, trace: Path) -> float:
    """The cold experts of the traced ubatches: per ubatch and layer the distinct experts above the hot ones, in MiB."""
    layout = hot_experts.read_layout(model)
    ids = moe_trace.read_trace(trace).ids
    total = 0
    for start in range(0, len(ids), UBATCH):
        for layer, size in layout.expert_bytes.items():
            selected = np.unique(ids[start:start + UBATCH, layer])
            total += size * int((selected >= N_HOT).sum())
    return total / 1024 / 1024


@pytest.mark.parametrize(("cold", "cpu_share"), [(["--moe-cold", "cpu"], 1.0), (["--moe-cold", "hybrid", "--moe-cold-cpu-share", "1"], 1.0),
                                                 (["--moe-cold", "hybrid", "--moe-cold-cpu-share", "0"], 0.0)],
                         ids=["cold-cpu", "hybrid-share-1", "hybrid-share-0"])
def test_the_cpus_time_and_cold_experts_are_reported(cpu_builds, tiny_moe, story, tmp_path, cold, cpu_share):
    trace = tmp_path / "run.moetrace"
    proc = perplexity(cpu_builds, tiny_moe, story, trace, "--moe-hot-stats", *cold)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cpu = parse_moe_cpu(proc.stderr)
    assert cpu.tokens == moe_trace.read_trace(trace).n_tokens == 128
    assert cpu.cold_mib == round(cpu_share * cold_mib(tiny_moe, trace), 2) and (cpu.cold_mib > 0) == (cpu_share > 0)
    # timed per graph: the sum over the ubatches stays within the time since the model was loaded (the summary's
    # prompt eval time is no bound: llama-perplexity's runs count about half of their wall time there)
    since_load = float(TOTAL_MS.search(proc.stderr).group(1)) - float(LOAD_MS.search(proc.stderr).group(1))
    assert 0 < cpu.ms <= since_load
    assert cpu.gbs == pytest.approx(cpu.cold_mib * 1024 * 1024 / 1e9 / (cpu.ms / 1e3), rel=1e-3, abs=0.011)


def test_without_counted_selections_there_is_no_cpu_line(cpu_builds, tiny_moe, story, tmp_path):
    proc = perplexity(cpu_builds, tiny_moe, story, tmp_path / "run.moetrace")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with pytest.raises(ParseError, match="moe CPU compute"):
        parse_moe_cpu(proc.stderr)


def test_counting_without_hot_experts_is_refused(cpu_builds, tiny_moe, story):
    proc = llama_tools.perplexity(cpu_builds, tiny_moe, story, "--moe-hot-stats")
    assert proc.returncode != 0
    assert "--moe-hot-stats counts the selections of the MoE hot experts and requires a budget (--moe-hot-mib)" in proc.stderr + proc.stdout
