"""scripts/placement-model.py's hybrid split: the cold experts of a layer step between the GPU and the CPU."""

from __future__ import annotations

import numpy as np
import pytest
from llama_tools import load_script

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
