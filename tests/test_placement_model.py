"""scripts/placement-model.py's hybrid split: the cold experts of a layer step between the GPU and the CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
from llama_tools import load_script

from builder import hot_experts

model = load_script("placement-model")

COLD = np.array([[2, 0], [4, 1]])  # cold experts of 2 tokens x 2 layers


def test_a_slow_cpu_takes_nothing_and_the_bus_reads_every_cold_expert():
    ms, cpu_share = model.hybrid_cold_ms(COLD, t_read=0.06, t_cpu=10.0, handoff=0.015)
    assert cpu_share == 0 and ms == pytest.approx(0.06 * COLD.sum() / 2)


def test_an_equal_cpu_without_handoff_takes_half_of_each_even_step():
    ms, cpu_share = model.hybrid_cold_ms(COLD, t_read=0.06, t_cpu=0.06, handoff=0.0)
    # 2 -> 1 + 1, 4 -> 2 + 2, 1 -> on the GPU (the first of two equal ends)
    assert cpu_share == pytest.approx(3 / 7) and ms == pytest.approx(0.06 * (1 + 2 + 1) / 2)


def test_the_handoff_keeps_single_cold_experts_on_the_gpu():
    ms, cpu_share = model.hybrid_cold_ms(np.array([[1, 1]]), t_read=0.06, t_cpu=0.01, handoff=0.055)
    assert cpu_share == 0 and ms == pytest.approx(0.12)
    ms, cpu_share = model.hybrid_cold_ms(np.array([[1, 1]]), t_read=0.06, t_cpu=0.01, handoff=0.045)
    assert cpu_share == 1 and ms == pytest.approx(0.11)


def test_no_cold_experts_cost_nothing():
    assert model.hybrid_cold_ms(np.zeros((3, 2), dtype=int), 0.06, 0.06, 0.015) == (0.0, 0.0)


@pytest.mark.parametrize(("share", "n_cpu"), [(0.0, 0), (0.25, 3), (0.5, 6), (1.0, 12)])
def test_the_cpu_side_without_a_profile_takes_its_share_of_the_cold_experts(share, n_cpu):
    # as patch 0018 splits the tiny model's 12 cold experts a layer (tests/test_hot_hybrid_cpu.py: 0, 6, 12, 24 of 2 x 12)
    on_cpu = hot_experts.cpu_side(None, list(range(4)), 16, share)
    assert on_cpu.sum() == n_cpu and not on_cpu[:4].any()


def test_the_cpu_side_balances_the_profiles_selections_most_used_first():
    counts = np.array([100, 0, 50, 49, 1, 0])  # expert 0 hot; cold by use, weighing count + 1: 2 (51), 3 (50), 4 (2), 1 (1), 5 (1)
    on_cpu = hot_experts.cpu_side(counts, [0], 6, 0.5)
    # 2 -> GPU (a tie goes to the GPU at one half), 3 -> CPU (0 < 51), 4 -> CPU (50 < 51), 1 -> GPU (52 > 51), 5 -> GPU (a tie)
    assert on_cpu.tolist() == [False, False, False, True, True, False]


def test_fixed_sides_end_a_step_with_the_later_side():
    ids = np.array([[[0, 1, 2, 3]]])  # one token, one layer; expert 0 hot, 1 on the CPU, 2 and 3 read by the GPU
    hot = np.array([[True, False, False, False]])
    on_cpu = np.array([[False, True, False, False]])
    cold = model.cold_selections(ids, hot)
    assert cold.tolist() == [[[False, True, True, True]]]
    ms, cpu_share = model.sides_cold_ms(ids, cold, on_cpu, t_read=0.06, t_cpu=0.05, handoff=0.015)
    assert cpu_share == pytest.approx(1 / 3) and ms == pytest.approx(max(2 * 0.06, 0.015 + 0.05))
    ms, _ = model.sides_cold_ms(ids, cold, on_cpu, t_read=0.01, t_cpu=0.05, handoff=0.015)
    assert ms == pytest.approx(0.065)  # the CPU's side is the later one
    assert model.sides_cold_ms(ids, cold, np.zeros_like(on_cpu), 0.06, 0.05, 0.015) == (pytest.approx(0.18), 0.0)


def test_a_prefetch_pays_only_the_copies_beyond_its_lead_and_the_reads_it_did_not_cover():
    base = dict(t_gpu=2.0, cold=10.0, t_read=0.06, t_copy=0.05, n_layer=24)
    assert model.prefetch_ms(**base, slots=0, covered=0.0, lead=0.0) == pytest.approx(2.6)
    assert model.prefetch_ms(**base, slots=1, covered=0.5, lead=0.085) == pytest.approx(2.3)       # copies hidden
    assert model.prefetch_ms(**base, slots=2, covered=0.5, lead=0.085) == pytest.approx(2.3 + 24 * 0.015)


def test_prefetch_coverage_is_read_by_budget_and_slots_and_an_unknown_predictor_is_refused(tmp_path):
    path = tmp_path / "predict-experts.json"
    path.write_text(json.dumps({"topk_recall": {"co-occurrence": 0.44},
                                "budgets": [{"budget_pct": 50, "slots": {"1": {"co-occurrence": 0.14, "more-hot": 0.05}}}]}))
    assert model.prefetch_coverage(path, "co-occurrence") == {50: {1: {"co-occurrence": 0.14, "more-hot": 0.05}}}
    with pytest.raises(SystemExit, match="has no predictor 'before-attention' \\(it has co-occurrence, more-hot\\)"):
        model.prefetch_coverage(path, "before-attention")
