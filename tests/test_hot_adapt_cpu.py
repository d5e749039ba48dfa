"""Patch 0004 in the CPU build: hot experts that follow the routing swap experts, never change the result."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import llama_tools
import pytest
from llama_tools import final_ppl

pytestmark = pytest.mark.slow

SUMMARY = re.compile(r"llama_moe_hot: adapt: (\d+) updates, (\d+) swaps, ([\d.]+) MiB copied; hot hit rate ([\d.]+)% over \d+ tokens, "
                     r"([\d.]+)% before the first update \(\d+ tokens\), ([\d.]+)% after it \(\d+ tokens\)")


def perplexity(dist: Path, model: Path, text: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # ubatches of 16 tokens: the hot sets are updated between ubatches, every 16 tokens here
    return llama_tools.perplexity(dist, model, text, "-b", "64", "-ub", "16", *args, env=env)


def summary(proc: subprocess.CompletedProcess) -> dict[str, float]:
    match = SUMMARY.search(proc.stderr)
    assert match, proc.stderr[-3000:]
    keys = ["updates", "swaps", "mib", "hit", "hit_before", "hit_after"]
    return dict(zip(keys, map(float, match.groups())))


@pytest.fixture(scope="module")
def profile(cpu_builds, tiny_moe, story, tmp_path_factory) -> tuple[Path, str]:
    """The model's routing on the story (the hot profile), and the perplexity without hot experts."""
    trace = tmp_path_factory.mktemp("trace") / "tiny.moetrace"
    return trace, final_ppl(perplexity(cpu_builds, tiny_moe, story, "--moe-trace-out", str(trace)))


@pytest.mark.parametrize("mib", ["1", "2"])
@pytest.mark.parametrize("with_profile", [False, True], ids=["experts-0..n-1", "profile"])
def test_adapting_hot_experts_gives_the_same_perplexity(cpu_builds, tiny_moe, story, profile, mib, with_profile):
    trace, reference = profile
    hot = ["--cpu-moe", "--moe-hot-mib", mib] + (["--moe-hot-profile", str(trace)] if with_profile else [])
    static = perplexity(cpu_builds, tiny_moe, story, *hot)
    adapted = perplexity(cpu_builds, tiny_moe, story, *hot, "--moe-hot-adapt", "16")
    assert final_ppl(static) == reference
    assert final_ppl(adapted) == reference
    assert summary(adapted)["updates"] > 0


def test_the_hot_set_moves_to_the_experts_the_router_selects(cpu_builds, tiny_moe, story, profile):
    _, reference = profile
    # without a profile experts 0..3 start hot; the router selects others more often
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "16")
    assert final_ppl(proc) == reference
    s = summary(proc)
    assert s["swaps"] > 0 and s["mib"] > 0
    assert s["hit_after"] > s["hit_before"]


def test_swapped_in_experts_go_live_a_ubatch_after_their_copies(cpu_builds, tiny_moe, story, profile):
    _, reference = profile
    # 0037: the ubatch after an update reads the maps without its swaps (their copies run beside it on a GPU), so the
    # swapped-in experts' selections in that ubatch are cold; LLAMA_MOE_HOT_SWAP_INLINE=1 makes them live at once
    hot = ["--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "16"]
    later = perplexity(cpu_builds, tiny_moe, story, *hot)
    inline = perplexity(cpu_builds, tiny_moe, story, *hot, env={"LLAMA_MOE_HOT_SWAP_INLINE": "1"})
    assert final_ppl(later) == final_ppl(inline) == reference
    assert "the swaps copy on the layers' streams ahead of the next ubatch" in inline.stderr
    s_later, s_inline = summary(later), summary(inline)
    assert s_later["swaps"] > 0
    assert (s_later["updates"], s_later["swaps"], s_later["mib"]) == (s_inline["updates"], s_inline["swaps"], s_inline["mib"])
    assert s_later["hit_before"] == s_inline["hit_before"]
    assert s_later["hit_after"] < s_inline["hit_after"]


def test_a_replayed_routing_is_unchanged_by_adaptation(cpu_builds, tiny_moe, story, profile):
    trace, _ = profile
    route = ["--moe-route", f"trace:{trace}"]
    reference = final_ppl(perplexity(cpu_builds, tiny_moe, story, *route))
    proc = perplexity(cpu_builds, tiny_moe, story, *route, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "16")
    assert final_ppl(proc) == reference


def test_more_sequences_than_tokens_a_ubatch_are_counted(cpu_builds, tiny_moe, story):
    # -b 256 at -c 64: four sequences, whose reservation builds a graph of four tokens, more than a ubatch of one holds;
    # the selections the graph writes for observe must have room for them (0021 aborted here on a GPU)
    steps = ["-b", "256", "-ub", "1"]
    reference = final_ppl(llama_tools.perplexity(cpu_builds, tiny_moe, story, *steps))
    proc = llama_tools.perplexity(cpu_builds, tiny_moe, story, *steps, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "16")
    assert "n_seq_max             = 4" in proc.stderr
    assert final_ppl(proc) == reference
    assert summary(proc)["updates"] > 0


@pytest.mark.parametrize("ubatch", ["1", "16"])
def test_counting_a_ubatch_after_the_next_one_starts_changes_no_count(cpu_builds, tiny_moe, story, ubatch):
    # the selections are read without a wait and counted at the next ubatch or synchronisation (LLAMA_MOE_HOT_COUNT_WAIT=1:
    # at once): the same updates, swaps, hit rates and token counts, the last ubatch included
    steps = ["-b", "64", "-ub", ubatch, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "8"]
    deferred = llama_tools.perplexity(cpu_builds, tiny_moe, story, *steps)
    waiting = llama_tools.perplexity(cpu_builds, tiny_moe, story, *steps, env={"LLAMA_MOE_HOT_COUNT_WAIT": "1"})
    assert final_ppl(deferred) == final_ppl(waiting)
    assert SUMMARY.search(deferred.stderr).group(0) == SUMMARY.search(waiting.stderr).group(0)
    assert summary(deferred)["updates"] > 0


COUNTED_IN_GRAPH = "in one-token ubatches the down experts' mul_mat_id counts the selections of 2 of the 2 counted layers"


def test_one_token_ubatches_count_in_the_down_experts_node_as_copies_count(cpu_builds, tiny_moe, story):
    # every expert hot (4 MiB holds the tiny model's 16 a layer): one-token ubatches count the selections in the node that reads
    # the down experts' copies (patch 0022), LLAMA_MOE_HOT_COUNT_COPY=1 copies them for observe: the same PPL and summary
    steps = ["-b", "64", "-ub", "1", "--cpu-moe", "--moe-hot-mib", "4", "--moe-hot-adapt", "8"]
    counted = llama_tools.perplexity(cpu_builds, tiny_moe, story, *steps)
    copied = llama_tools.perplexity(cpu_builds, tiny_moe, story, *steps, env={"LLAMA_MOE_HOT_COUNT_COPY": "1"})
    assert COUNTED_IN_GRAPH in counted.stderr and COUNTED_IN_GRAPH not in copied.stderr
    assert final_ppl(counted) == final_ppl(copied)
    assert SUMMARY.search(counted.stderr).group(0) == SUMMARY.search(copied.stderr).group(0)
    # selections were counted: an uncounted hot set has no hit rate to report
    assert summary(counted)["hit"] == 100.0 and summary(counted)["updates"] > 0


def test_adaptation_without_a_budget_is_refused(cpu_builds, tiny_moe, story):
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-adapt", "16")
    assert proc.returncode != 0
    assert "the MoE hot adaptation (--moe-hot-adapt) requires a budget (--moe-hot-mib)" in proc.stderr


def test_prompt_processing_ubatches_count_but_do_not_update(cpu_builds, tiny_moe, story):
    # ubatches of 64 tokens (>= 32) are prompt processing: selections are counted, the hot sets stay
    prompt = ["-b", "64", "-ub", "64"]
    reference = final_ppl(llama_tools.perplexity(cpu_builds, tiny_moe, story, *prompt))
    proc = llama_tools.perplexity(cpu_builds, tiny_moe, story, *prompt, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "16")
    assert final_ppl(proc) == reference
    s = summary(proc)
    assert s["updates"] == 0 and s["swaps"] == 0 and s["hit"] > 0


@pytest.mark.parametrize("flag, value, rule", [("--moe-hot-adapt-ratio", "4", "4.00 x a hot one + 1 and their difference 0 x"),
                                               ("--moe-hot-adapt-margin", "6", "1.25 x a hot one + 6 and their difference 0 x"),
                                               ("--moe-hot-adapt-noise", "2.5", "1.25 x a hot one + 1 and their difference 2.5 x")])
def test_a_stricter_swap_rule_swaps_less(cpu_builds, tiny_moe, story, profile, flag, value, rule):
    _, reference = profile
    # the loosest rule: 0004's constants, without 0015's noise test
    hot = ["--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "16", "--moe-hot-adapt-noise", "0"]
    loosest = summary(perplexity(cpu_builds, tiny_moe, story, *hot))
    proc = perplexity(cpu_builds, tiny_moe, story, *hot, flag, value)
    assert final_ppl(proc) == reference
    assert f"swap when a cold score exceeds {rule}" in proc.stderr
    assert summary(proc)["swaps"] < loosest["swaps"]


@pytest.mark.parametrize("flag, value, why", [("--moe-hot-adapt-ratio", "0.5", "must be at least 1"),
                                              ("--moe-hot-adapt-margin", "-1", "must be at least 0"),
                                              ("--moe-hot-adapt-noise", "-1", "must be at least 0"),
                                              ("--moe-hot-adapt-decay", "1", "must be from 0 to below 1"),
                                              ("--moe-hot-adapt-decay", "-0.5", "must be from 0 to below 1")])
def test_a_swap_rule_out_of_range_is_refused(cpu_builds, tiny_moe, story, flag, value, why):
    proc = perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "16", flag, value)
    assert proc.returncode != 0
    assert f'error while handling argument "{flag}": {why}' in proc.stderr


def test_the_score_decay_changes_which_experts_swap_not_the_answer(cpu_builds, tiny_moe, story, profile):
    _, reference = profile
    hot = ["--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-adapt", "16", "--moe-hot-adapt-noise", "0"]
    forgetful = perplexity(cpu_builds, tiny_moe, story, *hot, "--moe-hot-adapt-decay", "0")
    remembering = perplexity(cpu_builds, tiny_moe, story, *hot, "--moe-hot-adapt-decay", "0.9")
    assert "the square root of their sum; scores x 0 after each update" in forgetful.stderr
    assert "the square root of their sum; scores x 0.9 after each update" in remembering.stderr
    assert final_ppl(forgetful) == final_ppl(remembering) == reference
    # each update of the forgetful set sees its last 16 tokens alone, so it swaps more than one that remembers the updates before
    assert summary(forgetful)["swaps"] > summary(remembering)["swaps"] > 0


def test_llama_bench_takes_the_swap_rule(cpu_builds, tiny_moe):
    bench = [cpu_builds / "cpu" / "bin" / "llama-bench", "-m", tiny_moe, "-p", "0", "-n", "4", "-r", "1", "-t", "2", "-o", "jsonl",
             "-ncmoe", "9", "--repack", "0", "--moe-hot-mib", "1", "--moe-hot-adapt", "2"]
    proc = subprocess.run([*bench, "-v", "--moe-hot-adapt-ratio", "4", "--moe-hot-adapt-margin", "4", "--moe-hot-adapt-noise", "3",
                           "--moe-hot-adapt-decay", "0.8"],
                          check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[0])["moe_hot_mib"] == 1
    # the rule reached the context
    assert "swap when a cold score exceeds 4.00 x a hot one + 4 and their difference 3 x" in proc.stderr
    assert "scores x 0.8 after each update" in proc.stderr
    for flag, value in (("--moe-hot-adapt-margin", "-1"), ("--moe-hot-adapt-ratio", "0.5"), ("--moe-hot-adapt-noise", "-1"),
                        ("--moe-hot-adapt-decay", "1")):
        bad = subprocess.run([*bench, flag, value], check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert bad.returncode != 0 and "error: invalid parameter for argument: " + flag in bad.stderr
