"""Hot-expert budgets, hot sets and hit rates (builder.hot_experts) on generated GGUF files and a
recorded trace, checked against what the fork's tools printed for the same model and trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_tools import hot_sets_printed

from builder import hot_experts, moe_trace
from builder.report.parse import MoeAdaptInfo, MoeHotInfo, ParseError, parse_moe_adapt, parse_moe_hot
from builder.synth_model import ModelSpec, write_moe_model

DATA = Path(__file__).parent / "data" / "regress"
EXPERT = 3 * 256 * 256 * 18 // 32  # gate, up and down of 256 x 256 in Q4_0 (18 bytes a block of 32)


@pytest.fixture(scope="module")
def qwen3moe(tiny_vocab, tmp_path_factory) -> hot_experts.ExpertLayout:
    """The experts of `make-model --router-skew 1.0` (regress's synthetic-qwen3moe), whose routing
    tests/data/regress/trace-perplexity.moetrace recorded."""
    path = tmp_path_factory.mktemp("models") / "qwen3moe.gguf"
    write_moe_model(path, ModelSpec(router_skew=1.0), tiny_vocab)
    return hot_experts.read_layout(path)


def recorded_hot_sets(name: str) -> dict[int, list[int]]:
    """The hot sets the fork printed (-v) for the recorded trace."""
    return hot_sets_printed((DATA / name).read_text())


def test_layout_is_one_experts_slices_per_moe_layer(qwen3moe):
    assert qwen3moe.n_expert == 16 and qwen3moe.expert_bytes == {layer: EXPERT for layer in range(4)}
    assert qwen3moe.total_bytes == 4 * 16 * EXPERT  # 6.75 MiB


def test_dense_layers_and_shared_experts_are_not_experts(tiny_vocab, tmp_path):
    path = tmp_path / "ds.gguf"
    write_moe_model(path, ModelSpec(arch="deepseek2", n_layer=3, n_embd=64, n_expert=8, n_expert_used=2, expert_ff=64,
                                    type="Q8_0"), tiny_vocab)
    layout = hot_experts.read_layout(path)
    assert layout.n_expert == 8 and layout.expert_bytes == {1: 3 * 64 * 68, 2: 3 * 64 * 68}  # layer 0 is dense
    n_hot = hot_experts.hot_counts(layout, hot_experts.budget_mib(layout, 0.25))
    assert n_hot == {1: 8, 2: 8}  # 1 MiB holds every expert of this tiny model


def test_a_model_without_experts_is_named_where_a_moe_is_needed(tiny_vocab, qwen3moe):
    # tiny_vocab is a GGUF with a vocabulary and no tensors
    assert hot_experts.read_layout(tiny_vocab).expert_bytes == {}
    with pytest.raises(ValueError, match=f"{tiny_vocab} has no expert tensors \\(blk.N.ffn_\\*_exps\\): not a MoE model"):
        hot_experts.read_moe_layout(tiny_vocab)


@pytest.mark.parametrize("share, mib, n_hot, recorded", [(0.25, 2, 4, "hot-2mib.log"), (0.5, 4, 9, "hot-4mib.log")])
def test_budgets_and_hot_sets_are_the_tools(qwen3moe, share, mib, n_hot, recorded):
    budget = hot_experts.budget_mib(qwen3moe, share)
    assert budget == mib  # 1.69 / 3.38 MiB, rounded up
    counts = hot_experts.hot_counts(qwen3moe, budget)
    assert counts == dict.fromkeys(range(4), n_hot)
    assert parse_moe_hot((DATA / recorded).read_text()) == MoeHotInfo(4, n_hot, n_hot)
    trace = moe_trace.read_trace(DATA / "trace-perplexity.moetrace")
    assert hot_experts.hot_sets(moe_trace.selection_counts(trace), counts) == recorded_hot_sets(recorded)


def test_a_budget_gives_every_layer_at_least_one_expert(qwen3moe):
    layout = hot_experts.ExpertLayout(16, {0: 3 * hot_experts.MIB // 4, 5: hot_experts.MIB // 2})
    assert hot_experts.budget_mib(layout, 0.01) == 2  # 2 layers x the largest expert (0.75 MiB), rounded up
    assert hot_experts.hot_counts(layout, 2) == {0: 1, 5: 2}
    assert hot_experts.budget_mib(qwen3moe, 0.0) == 1 and set(hot_experts.hot_counts(qwen3moe, 1).values()) == {2}
    assert hot_experts.hot_counts(qwen3moe, 1000) == dict.fromkeys(range(4), 16)  # capped at every expert


def test_a_profile_spreads_the_budget_by_each_layers_share_of_selections_per_byte():
    layout = hot_experts.ExpertLayout(4, dict.fromkeys(range(3), hot_experts.MIB))
    # layer 0 selects one expert only, layer 1 all alike, layer 2 mostly two; layer 1's counts are twice as many (a
    # layer that computed every token of the profile where the others computed half): shares, not counts, decide
    profile = np.array([[100, 0, 0, 0], [50, 50, 50, 50], [50, 30, 20, 0]])
    assert hot_experts.hot_counts(layout, 6) == {0: 2, 1: 2, 2: 2}  # evenly without a profile
    # after one each: layer 2's 30 % per MiB, then layer 1's 25 % twice (the higher-ranked slot first), before layer 2's 20 %
    assert hot_experts.hot_counts(layout, 6, profile) == {0: 1, 1: 3, 2: 2}
    assert hot_experts.hot_counts(layout, 8, profile) == {0: 1, 1: 4, 2: 3}
    # what is left after the selected slots goes to the never-selected ones, the higher rank first, then the lower layer
    assert hot_experts.hot_counts(layout, 9, profile) == {0: 2, 1: 4, 2: 3}
    assert hot_experts.hot_counts(layout, 100, profile) == dict.fromkeys(range(3), 4)
    assert hot_experts.hot_counts(layout, 2, profile) == dict.fromkeys(range(3), 0)  # not one expert each


def test_the_profiles_spread_weighs_each_layers_bytes():
    # layer 1's experts are twice as large: its next expert's 30 % of the selections is 15 % a MiB, below layer 0's 20 %
    layout = hot_experts.ExpertLayout(4, {0: hot_experts.MIB, 1: 2 * hot_experts.MIB})
    profile = np.array([[50, 20, 20, 10], [50, 30, 20, 0]])
    assert hot_experts.hot_counts(layout, 5, profile) == {0: 3, 1: 1}
    assert hot_experts.hot_counts(layout, 7, profile) == {0: 3, 1: 2}


def test_hit_rates_count_selections_in_the_hot_set():
    ids = np.array([[[0, 1], [-1, -1]], [[0, 2], [-1, -1]], [[0, 1], [-1, -1]], [[3, 1], [-1, -1]]], dtype="<i2")
    counts = moe_trace.selection_counts(moe_trace.Trace(2, 4, 2, ids))  # layer 1 dense
    assert counts.tolist() == [[3, 3, 1, 1], [0, 0, 0, 0]]
    hot = hot_experts.hot_sets(counts, {0: 1})
    assert hot == {0: [0]}  # tie between 0 and 1: the lower id
    assert hot_experts.hit_rates(counts, hot) == [3 / 8, None]
    assert hot_experts.hit_rates(counts, hot_experts.hot_sets(counts, {0: 3})) == [7 / 8, None]


def test_a_static_set_s_hit_rate_over_other_tokens_counts_them_directly():
    # the set from one trace's counts, the hits over another's: bench-placements' static_hit
    profile = np.array([[5, 1, 0, 3], [0, 0, 0, 0]])  # layer 1 dense
    decoded = np.array([[1, 4, 2, 3], [0, 0, 0, 0]])
    assert hot_experts.static_hit_rate(profile, decoded, {0: 2}) == (1 + 3) / 10  # experts 0 and 3
    assert hot_experts.static_hit_rate(decoded, decoded, {0: 2}) == (4 + 3) / 10  # in-sample: 1 and 3
    assert hot_experts.static_hit_rate(profile, np.zeros((2, 4), dtype=int), {0: 2}) == 0.0


def test_hit_rates_on_the_recorded_trace_grow_with_the_budget(qwen3moe):
    counts = moe_trace.selection_counts(moe_trace.read_trace(DATA / "trace-perplexity.moetrace"))
    rates = [hot_experts.hit_rates(counts, hot_experts.hot_sets(counts, dict.fromkeys(range(4), n))) for n in (4, 9, 16)]
    assert all(0.25 < a < b < c == 1.0 for a, b, c in zip(*rates))  # a skewed router: 4 of 16 get more than 25 %


def test_tool_line_over_devices_and_its_absence():
    text = ("llama_moe_hot: CUDA0: 24 layers, 3-4 of 128 experts hot per layer (t), 10.00 MiB\n"
            "llama_moe_hot: CUDA1: 24 layers, 5 of 128 experts hot per layer (t), 10.00 MiB\n")
    assert parse_moe_hot(text) == MoeHotInfo(48, 3, 5)
    with pytest.raises(ParseError, match="experts hot per layer"):
        parse_moe_hot("llama_moe_hot: no MoE layer of a GPU keeps its experts in host memory, hot experts disabled\n")


def test_adaptive_summary_line_and_its_absence():
    # the line as the cpu build's llama-server printed it on exit (-lv 4, --moe-hot-adapt 8)
    text = ("0.05.405.245 I srv    operator(): operator(): cleaning up before exit...\n"
            "0.05.408.388 I llama_moe_hot: adapt: 16 updates, 29 swaps, 3.06 MiB copied; hot hit rate 28.1% over 144 tokens, "
            "26.8% before the first update (11 tokens), 28.2% after it (133 tokens)\n")
    assert parse_moe_adapt(text) == MoeAdaptInfo(updates=16, swaps=29, mib_copied=3.06, hit_rate=28.1, routed_tokens=144)
    with pytest.raises(ParseError, match="llama_moe_hot: adapt"):
        parse_moe_adapt("llama_moe_hot: CPU: 2 layers, 4 of 16 experts hot per layer (experts 0..n-1, no profile), 0.84 MiB\n")
