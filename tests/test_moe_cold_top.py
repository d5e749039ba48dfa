"""Patch 0020 in the CPU build: --moe-cold-top N computes a cold expert only at a token's first N ranks.

A skipped expert must add nothing, and everything else must stay as it was. The reference is built so that it cannot
share a mistake with the patch: a replayed routing puts, for every token and layer, a hot expert (0..3) at rank 0, a
cold expert of 4..9 at rank 1 and two of 10..15 at ranks 2 and 3; with --moe-cold-top 2 the experts of 10..15 are
skipped and the others computed. A copy of the model whose experts 10..15 have all-zero down projections gives
exactly what skipping them gives, computed the stock way. The replay keeps the router's weights: the router is the
same in both files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import gguf
import llama_tools
import numpy as np
import pytest
from llama_tools import final_ppl

from builder import hot_experts, moe_trace
from builder.report.parse import parse_moe_adapt, parse_moe_cold_top, parse_moe_cpu

pytestmark = pytest.mark.slow

N_TOKENS = 128  # two chunks of 64
N_LAYER, N_EXPERT, N_USED = 2, 16, 4
TOP = 2
HOT = range(0, 4)  # --moe-hot-mib 1: experts 0..3 without a profile
COMPUTED = range(4, 10)  # the cold experts of rank 1
SKIPPED = range(10, 16)  # the cold experts of ranks 2 and 3
UBATCHES = (1, 16, 64)  # one token, a small batch, a batch of prompt processing (32 tokens or more)


def perplexity(dist: Path, model: Path, text: Path, trace: Path, ubatch: int, *args: str) -> subprocess.CompletedProcess:
    return llama_tools.perplexity(dist, model, text, "-b", "64", "-ub", str(ubatch), "--no-warmup", "--moe-route", f"trace:{trace}",
                                  "--cpu-moe", "--moe-hot-mib", "1", *args)


@pytest.fixture(scope="module")
def routing(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    ids = np.empty((N_TOKENS, N_LAYER, N_USED), dtype=np.int16)
    for token in range(N_TOKENS):
        for layer in range(N_LAYER):
            ids[token, layer] = [rng.choice(HOT), rng.choice(COMPUTED), *rng.choice(SKIPPED, 2, replace=False)]
    path = tmp_path_factory.mktemp("route") / "ranks.moetrace"
    moe_trace.write_trace(moe_trace.Trace(N_LAYER, N_EXPERT, N_USED, ids), path)
    return path


@pytest.fixture(scope="module")
def zeroed_model(tiny_moe, tmp_path_factory) -> Path:
    """The tiny model with all-zero down projections for the experts that --moe-cold-top 2 skips."""
    path = tmp_path_factory.mktemp("zeroed") / "tiny-zeroed.gguf"
    path.write_bytes(tiny_moe.read_bytes())
    reader = gguf.GGUFReader(path, "r+")
    downs = [t for t in reader.tensors if t.name.endswith("ffn_down_exps.weight")]
    assert len(downs) == N_LAYER
    for tensor in downs:
        experts = tensor.data.reshape(N_EXPERT, -1)
        experts[SKIPPED.start:SKIPPED.stop] = 0
    reader.data.flush()
    return path


@pytest.fixture(scope="module")
def references(cpu_builds, tiny_moe, zeroed_model, story, routing) -> dict[int, tuple[str, str]]:
    """Per ubatch size: (the perplexity with experts 10..15 zeroed, the perplexity of the model as it is), no skipping."""
    return {ub: (final_ppl(perplexity(cpu_builds, zeroed_model, story, routing, ub)), final_ppl(perplexity(cpu_builds, tiny_moe, story, routing, ub)))
            for ub in UBATCHES}


@pytest.mark.parametrize("ubatch", UBATCHES)
@pytest.mark.parametrize("cold", [["--moe-cold", "cpu"], ["--moe-cold", "hybrid", "--moe-cold-cpu-share", "0.5"]], ids=["cold-cpu", "hybrid"])
def test_a_skipped_cold_expert_adds_nothing(cpu_builds, tiny_moe, story, routing, references, ubatch, cold):
    zeroed, unchanged = references[ubatch]
    assert zeroed != unchanged  # the skipped experts matter
    proc = perplexity(cpu_builds, tiny_moe, story, routing, ubatch, *cold, "--moe-cold-top", str(TOP))
    assert "2 of the 2 split layers compute a cold expert only where the router ranks it among a token's first 2" in proc.stderr
    assert final_ppl(proc) == zeroed


def test_skipped_selections_are_counted_apart(cpu_builds, tiny_moe, story, routing, tmp_path):
    # the run's own trace has the rows each layer computed (the last one computes only the rows whose logits are used)
    computed = tmp_path / "computed.moetrace"
    proc = perplexity(cpu_builds, tiny_moe, story, routing, 16, "--moe-hot-stats", "--moe-cold-top", str(TOP), "--moe-trace-out", str(computed))
    ids = moe_trace.read_trace(computed).ids
    assert ids.shape[0] == N_TOKENS and (ids[:, 0] >= 0).all() and 0 < (ids[:, -1] >= 0).sum() < ids[:, -1].size
    np.testing.assert_array_equal(np.where(ids >= 0, moe_trace.read_trace(routing).ids, -1), ids)  # the replayed routing
    top = parse_moe_cold_top(proc.stderr)
    assert (top.top, top.skipped, top.selections) == (TOP, int((ids[:, :, TOP:] >= 0).sum()), int((ids >= 0).sum()))
    # the cold experts read: per ubatch and layer the distinct ones of rank 1, none of ranks 2 and 3
    sizes = hot_experts.read_layout(tiny_moe).expert_bytes
    distinct = {(start, layer): len(np.setdiff1d(ids[start:start + 16, layer, 1], [-1])) for start in range(0, N_TOKENS, 16) for layer in range(N_LAYER)}
    assert top.cold == sum(distinct.values())
    mib = round(sum(n * sizes[layer] for (_, layer), n in distinct.items()) / 1024 / 1024, 2)
    assert top.cold_mib == parse_moe_cpu(proc.stderr).cold_mib == mib


def test_the_adaptive_hot_set_still_counts_skipped_experts(cpu_builds, tiny_moe, story, routing, tmp_path):
    # experts 10..15 are selected twice as often as the hot ones but never computed: only their scores can make them hot
    computed = tmp_path / "computed.moetrace"
    swap_rule = ["--moe-hot-adapt", "16", "--moe-hot-adapt-ratio", "1", "--moe-hot-adapt-margin", "0", "--moe-hot-adapt-noise", "0"]
    proc = perplexity(cpu_builds, tiny_moe, story, routing, 16, *swap_rule, "--moe-cold-top", str(TOP), "--moe-trace-out", str(computed))
    assert parse_moe_adapt(proc.stderr).swaps > 0
    ids = moe_trace.read_trace(computed).ids
    assert parse_moe_cold_top(proc.stderr).skipped < (ids[:, :, TOP:] >= 0).sum()  # hot experts at ranks 2 and 3 were computed


def test_a_top_of_every_rank_changes_nothing(cpu_builds, tiny_moe, story, routing, references):
    proc = perplexity(cpu_builds, tiny_moe, story, routing, 16, "--moe-cold-top", str(N_USED))
    assert "0 of the 2 split layers compute a cold expert only where" in proc.stderr
    assert final_ppl(proc) == references[16][1]


def test_llama_bench_takes_the_option(cpu_builds, tiny_moe):
    # a test without a budget (0) runs without skipping, as without the other hot expert options
    bench = [cpu_builds / "cpu" / "bin" / "llama-bench", "-m", tiny_moe, "-p", "0", "-n", "4", "-r", "1", "-t", "2", "-o", "jsonl",
             "-ncmoe", "9", "--repack", "0", "--moe-hot-mib", "0,1"]
    proc = subprocess.run([*bench, "-v", "--moe-cold-top", str(TOP)], check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr.count("2 of the 2 split layers compute a cold expert only where the router ranks it among a token's first 2") == 1
    bad = subprocess.run([*bench, "--moe-cold-top", "-1"], check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0 and "error: invalid parameter for argument: --moe-cold-top" in bad.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--cpu-moe", "--moe-hot-mib", "1", "--moe-cold-top", "-1"], "error while handling argument \"--moe-cold-top\": must be 0 or more"),
    (["--moe-cold-top", "2"], "skipping cold experts (--moe-cold-top) requires hot experts (--moe-hot-mib)"),
], ids=["negative", "without-a-budget"])
def test_bad_values_are_refused(cpu_builds, tiny_moe, story, args, message):
    proc = llama_tools.perplexity(cpu_builds, tiny_moe, story, *args)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
