"""Patches 0024-0027 in the CPU build: --moe-prefetch's bad input is refused before anything loads, and with the cold experts
read in place by the CPU (LLAMA_MOE_COLD_IN_PLACE_CPU=1, 0026; otherwise --moe-cold gpu needs a CUDA GPU) the prefetch,
ranked by the next layer's router or replayed, changes no answer. Its speed is measured on the GPU machine
(scripts/bench-placements.py hot-gpu-prefetch, hot-gpu-prefetch-oracle; the router's ranking on the trained model in
device-run.sh fidelity)."""

from __future__ import annotations

import re

import pytest
from llama_tools import final_ppl, perplexity

pytestmark = pytest.mark.slow

GPU = ("--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "gpu")
IN_PLACE = {"LLAMA_MOE_COLD_IN_PLACE_CPU": "1"}
ONE_PASS = ("-b", "4", "-ub", "4")
"""Steps of 4 tokens: the layers are read in one pass (0012) and prefetched (up to 4 tokens a step)."""


@pytest.fixture(scope="module")
def trace(cpu_builds, tiny_moe, story, tmp_path_factory):
    """The tiny model's routing on the story: a replay, and a ranking of the same tokens."""
    path = tmp_path_factory.mktemp("prefetch") / "tiny.moetrace"
    assert perplexity(cpu_builds, tiny_moe, story, "--moe-trace-out", str(path)).returncode == 0
    return path


@pytest.mark.parametrize("args, message", [
    (("--cpu-moe", "--moe-hot-mib", "1", "--moe-prefetch", "1"),
     "prefetching cold experts (--moe-prefetch) requires hot experts (--moe-hot-mib) and the cold experts on the GPU (--moe-cold gpu)"),
    (("--moe-prefetch", "1", "--moe-cold", "gpu"),
     "prefetching cold experts (--moe-prefetch) requires hot experts (--moe-hot-mib) and the cold experts on the GPU (--moe-cold gpu)"),
    (GPU + ("--moe-prefetch", "17"), "--moe-prefetch 17: at most 16 prefetch slots a layer"),
    (GPU + ("--moe-prefetch-route", "trace:x.moetrace"),
     "the experts to prefetch (--moe-prefetch-route) are copied into --moe-prefetch N slots a layer; give --moe-prefetch N too"),
    (("--moe-prefetch", "-1"), 'error while handling argument "--moe-prefetch": must be 0 or more'),
])
def test_a_prefetch_without_what_it_needs_is_refused(cpu_builds, tiny_moe, story, args, message):
    proc = perplexity(cpu_builds, tiny_moe, story, *args)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_a_ranking_is_replayed_only_beside_the_replayed_routing(cpu_builds, tiny_moe, story, trace):
    expected = ("the experts to prefetch (--moe-prefetch-route) are replayed from a trace (trace:FILE) beside the routing of the same "
                "tokens (--moe-route trace:FILE)")
    for extra in ((), ("--moe-route", "zipf:1.0")):
        proc = perplexity(cpu_builds, tiny_moe, story, *GPU, "--moe-prefetch", "1", "--moe-prefetch-route", f"trace:{trace}", *extra)
        assert proc.returncode != 0
        assert expected in proc.stderr
    proc = perplexity(cpu_builds, tiny_moe, story, *GPU, "--moe-prefetch", "1", "--moe-prefetch-route", str(trace), "--moe-route", f"trace:{trace}")
    assert proc.returncode != 0 and expected in proc.stderr


@pytest.mark.parametrize("ranking", ["router", "replayed"])
def test_with_what_it_needs_the_prefetch_reaches_the_gpu_check(cpu_builds, tiny_moe, story, trace, ranking):
    # every option accepted, the next layer's router ranking the experts (0025) or a replayed ranking (0024): what stops the
    # CPU build is that its layers have no CUDA GPU to read the cold experts in place
    replayed = ("--moe-prefetch-route", f"trace:{trace}", "--moe-route", f"trace:{trace}") if ranking == "replayed" else ()
    proc = perplexity(cpu_builds, tiny_moe, story, *GPU, "--moe-prefetch", "1", *replayed)
    assert proc.returncode != 0
    assert "MoE cold experts on the GPU (--moe-cold gpu): layer 0 runs on CPU, which is not a CUDA GPU" in proc.stderr


def test_asked_to_the_cpu_reads_the_cold_experts_in_place_with_the_answers_of_every_expert_on_it(cpu_builds, tiny_moe, story):
    # 0026: the layers read in one pass (0012), by the CPU's kernels; without the variable, test_hot_split_cpu's refusal
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, env=IN_PLACE)
    assert final_ppl(proc) == final_ppl(perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, "--cpu-moe"))
    assert ("the cold experts of 2 layers are computed on the CPU in place (LLAMA_MOE_COLD_IN_PLACE_CPU) in batches below 32 "
            "tokens, of 2 layers together with the hot experts") in proc.stderr
    assert "experts hot per layer" in proc.stderr


@pytest.mark.parametrize("ranking", ["router", "replayed"])
@pytest.mark.parametrize("slots", ["1", "2"])
@pytest.mark.parametrize("hot_set", ["static", "adaptive"])
def test_a_prefetch_changes_no_answer(cpu_builds, tiny_moe, story, trace, ranking, slots, hot_set):
    # its copies are bit copies: the experts read from a prefetch slot give the products read from the host; a copy left out
    # or put in the wrong slot changes the PPL (leaving out the CPU's memcpy gave NaN: the slots were never written). An
    # adaptive set swaps experts in and out beside the prefetch slots, which it must leave alone
    routing = ("--moe-route", f"trace:{trace}")
    adapt = ("--moe-hot-adapt", "4", "--moe-hot-adapt-noise", "0") if hot_set == "adaptive" else ()
    replayed = ("--moe-prefetch-route", f"trace:{trace}") if ranking == "replayed" else ()
    static = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, *routing, env=IN_PLACE)
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, *routing, *adapt, "--moe-prefetch", slots, *replayed, env=IN_PLACE)
    assert final_ppl(proc) == final_ppl(static)
    assert f"and {slots} prefetch slots" in proc.stderr
    assert graph_nodes(proc) > graph_nodes(static)  # the prefetch is in the graph, not only its slots
    if adapt:
        assert int(re.search(r"llama_moe_hot: adapt: \d+ updates, (\d+) swaps", proc.stderr).group(1)) > 0


@pytest.mark.parametrize("ranking", ["router", "replayed"])
def test_the_copies_started_beside_the_layer_before_s_experts_change_no_answer(cpu_builds, tiny_moe, story, trace, ranking):
    # 0027 starts them once the layer before's experts are summed; LLAMA_MOE_PREFETCH_EARLY=1 keeps 0024's start, at its MoE
    # input, to compare the two on the GPU: both read the same slots
    routing = ("--moe-route", f"trace:{trace}")
    replayed = ("--moe-prefetch-route", f"trace:{trace}") if ranking == "replayed" else ()
    args = (*ONE_PASS, *GPU, *routing, "--moe-prefetch", "1", *replayed)
    scheduled = {**IN_PLACE, "GGML_SCHED_DEBUG": "2"}  # with -v the scheduler logs every graph's nodes in order
    after = perplexity(cpu_builds, tiny_moe, story, *args, "-v", env=scheduled)
    early = perplexity(cpu_builds, tiny_moe, story, *args, "-v", env={**scheduled, "LLAMA_MOE_PREFETCH_EARLY": "1"})
    static = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, *routing, env=IN_PLACE)
    assert final_ppl(early) == final_ppl(after) == final_ppl(static)
    message = "the prefetch copies start at the MoE input of the layer before, beside its experts (LLAMA_MOE_PREFETCH_EARLY)"
    assert message in early.stderr and message not in after.stderr
    # a prefetch left out of the graph would change no answer either: both starts build it, the same nodes elsewhere
    assert graph_nodes(after) == graph_nodes(early) > graph_nodes(static)
    # layer 1's prefetch after layer 0's sum of experts and before its residual add, not between the weighted experts and
    # their sum (CUDA fuses those); the early one before layer 0's router
    late, first = layer_0_ffn(after), layer_0_ffn(early)
    assert late.index("ffn_moe_weighted-0") < late.index("ffn_moe_out-0") < late.index("ffn_moe_prefetch-1") < late.index("l_out-0")
    assert first.index("ffn_moe_prefetch-1") < first.index("ffn_moe_logits-0")


def layer_0_ffn(proc) -> list[str]:
    """The names of the nodes of the last graph from layer 0's FFN norm to layer 1's attention norm, in the order the
    scheduler runs them (GGML_SCHED_DEBUG=2, -v; views are not logged)."""
    names = re.findall(r"node #\s*\d+ \([^)]*\):\s*(\S+)", proc.stderr)
    start = len(names) - 1 - names[::-1].index("ffn_norm-0")
    return names[start:names.index("attn_norm-1", start) + 1]


def graph_nodes(proc) -> int:
    """The nodes of the ubatch's graph that the context reserved (sched_reserve's line; the first of "PP / TG" where the
    one-token graph differs)."""
    return int(re.search(r"sched_reserve: graph[^:]*: nodes = (\d+)", proc.stderr).group(1))
