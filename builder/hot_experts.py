"""Hot-expert budgets, hot sets and hit rates, computed as patch 0003 computes them
(`src/llama-moe-hot.cpp`, docs/hot-cold-split.md).

The tools spread `--moe-hot-mib` evenly over the MoE layers whose experts are in host memory; a
layer keeps `min(n_expert, floor(floor(budget / n_layers) / bytes of one expert))` experts, the
ones its `--moe-hot-profile` trace selects most often (ties: the lower id). regress gives every
MoE layer's experts to the host (its default placement), so all MoE layers count.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFReader

MIB = 1024 * 1024
EXPERT_TENSOR_RE = re.compile(r"^blk\.(\d+)\.ffn_(?:gate|up|down|gate_up)_exps\.weight$")


@dataclass(frozen=True)
class ExpertLayout:
    """The experts of a model's MoE layers."""

    n_expert: int
    expert_bytes: dict[int, int]
    """By layer: bytes of one expert, its slices of the layer's gate/up/down (or gate_up/down) tensors."""

    @property
    def total_bytes(self) -> int:
        return self.n_expert * sum(self.expert_bytes.values())


def read_layout(gguf_path: Path) -> ExpertLayout:
    """The expert tensors of a GGUF file (header only: the data is not read)."""
    sizes: dict[int, int] = {}
    n_expert = 0
    for t in GGUFReader(gguf_path).tensors:
        m = EXPERT_TENSOR_RE.match(t.name)
        if m:
            n_expert = int(t.shape[-1])  # ggml order: [ne0, ne1, n_expert]
            layer = int(m.group(1))
            sizes[layer] = sizes.get(layer, 0) + int(t.n_bytes) // n_expert
    return ExpertLayout(n_expert, dict(sorted(sizes.items())))


def budget_mib(layout: ExpertLayout, share: float) -> int:
    """`share` of the model's expert bytes in MiB, rounded up, and at least one expert in every
    layer (the tools refuse a budget that leaves a layer none)."""
    one_each = len(layout.expert_bytes) * max(layout.expert_bytes.values())
    return math.ceil(max(share * layout.total_bytes, one_each) / MIB)


def hot_counts(layout: ExpertLayout, budget: int) -> dict[int, int]:
    """By layer: how many experts a budget of `budget` MiB keeps hot."""
    per_layer = budget * MIB // len(layout.expert_bytes)
    return {layer: min(layout.n_expert, per_layer // size) for layer, size in layout.expert_bytes.items()}


def hot_sets(counts: np.ndarray, n_hot: dict[int, int]) -> dict[int, list[int]]:
    """By layer: its `n_hot` most selected experts in `counts` ([n_layer, n_expert]), ties to the lower id, in id order."""
    return {layer: sorted(int(e) for e in np.argsort(-counts[layer], kind="stable")[:n]) for layer, n in n_hot.items()}


def hit_rates(counts: np.ndarray, hot: dict[int, list[int]]) -> list[float | None]:
    """By layer of the model: the share of its selections in `counts` that are hot experts;
    None for a layer without hot experts or without selections."""
    rates: list[float | None] = [None] * counts.shape[0]
    for layer, experts in hot.items():
        total = int(counts[layer].sum())
        rates[layer] = int(counts[layer, experts].sum()) / total if total else None
    return rates
