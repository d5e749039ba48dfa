"""Hot-expert budgets, hot sets and hit rates, computed as patches 0003 and 0058 compute them
(`src/llama-moe-hot.cpp`, docs/hot-cold-split.md).

The tools spread `--moe-hot-mib` over the MoE layers whose experts are in host memory: with a
`--moe-hot-profile`, by its selections (`hot_counts`), without one evenly, a layer keeping
`min(n_expert, floor(floor(budget / n_layers) / bytes of one expert))` experts. Each layer's hot
experts are the ones its profile selects most often (ties: the lower id). regress gives every MoE
layer's experts to the host (its default placement), so all MoE layers count.
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


def read_moe_layout(gguf_path: Path) -> ExpertLayout:
    """read_layout of a model that must be a MoE: a ValueError naming the file where it has no expert tensors."""
    layout = read_layout(gguf_path)
    if not layout.expert_bytes:
        raise ValueError(f"{gguf_path} has no expert tensors (blk.N.ffn_*_exps): not a MoE model")
    return layout


def budget_mib(layout: ExpertLayout, share: float) -> int:
    """`share` of the model's expert bytes in MiB, rounded up, and at least one expert in every
    layer (the tools refuse a budget that leaves a layer none)."""
    one_each = len(layout.expert_bytes) * max(layout.expert_bytes.values())
    return math.ceil(max(share * layout.total_bytes, one_each) / MIB)


def hot_counts(layout: ExpertLayout, budget: int, profile: np.ndarray | None = None) -> dict[int, int]:
    """By layer: how many experts a budget of `budget` MiB keeps hot. Without `profile`, evenly; with it (the
    `--moe-hot-profile`'s selection counts, [n_layer, n_expert]) as patch 0058 spreads it: one expert a layer, then
    slot by slot to the layer whose next most selected expert has the largest share of the layer's selections per byte
    (ties: the higher-ranked slot, then the lower layer) while the budget has its bytes; none anywhere if it cannot
    give every layer one."""
    size = budget * MIB
    if profile is None:
        return {layer: min(layout.n_expert, size // len(layout.expert_bytes) // nbytes) for layer, nbytes in layout.expert_bytes.items()}
    n_hot = dict.fromkeys(layout.expert_bytes, 1)
    used = sum(layout.expert_bytes.values())
    if used > size:
        return dict.fromkeys(layout.expert_bytes, 0)
    slots = []  # (share per byte, rank, layer, bytes) of every slot after a layer's first, by layer and rank
    for layer, nbytes in layout.expert_bytes.items():
        counts = sorted((int(c) for c in profile[layer]), reverse=True)
        total = sum(counts)
        slots += [(counts[rank] / total / nbytes if total else 0.0, rank, layer, nbytes) for rank in range(1, layout.n_expert)]
    for _, _, layer, nbytes in sorted(slots, key=lambda s: (-s[0], s[1])):  # stable: the lower layer first on a tie
        if used + nbytes <= size:
            n_hot[layer] += 1
            used += nbytes
    return n_hot


def hot_sets(counts: np.ndarray, n_hot: dict[int, int]) -> dict[int, list[int]]:
    """By layer: its `n_hot` most selected experts in `counts` ([n_layer, n_expert]), ties to the lower id, in id order."""
    return {layer: sorted(int(e) for e in np.argsort(-counts[layer], kind="stable")[:n]) for layer, n in n_hot.items()}


def cpu_side(counts: np.ndarray | None, hot: list[int], n_expert: int, share: float) -> np.ndarray:
    """`--moe-cold hybrid` (patch 0018): whether the CPU computes each cold expert of a layer ([n_expert] bool).
    The cold experts, the most selected in `counts` ([n_expert], None: all count the same) first, ties to the lower
    id, go each to the side furthest below its share of the selections so far (each counts its selections + 1; a
    tie to the side with the larger share, the GPU at one half)."""
    share = float(np.float32(share))  # the tools keep it as a float
    weights = np.ones(n_expert) if counts is None else counts.astype(float) + 1.0
    order = np.argsort(-(np.zeros(n_expert) if counts is None else counts), kind="stable")
    hot_set = set(hot)
    on_cpu = np.zeros(n_expert, dtype=bool)
    load_cpu = load_gpu = 0.0
    for e in (int(e) for e in order if int(e) not in hot_set):
        cpu_scaled, gpu_scaled = load_cpu * (1 - share), load_gpu * share
        if cpu_scaled < gpu_scaled or (cpu_scaled == gpu_scaled and share > 0.5):
            on_cpu[e] = True
            load_cpu += weights[e]
        else:
            load_gpu += weights[e]
    return on_cpu


def static_hit_rate(profile: np.ndarray, decoded: np.ndarray, n_hot: dict[int, int]) -> float:
    """The share of all selections in `decoded` ([n_layer, n_expert] counts) that the static hot sets hold, each layer's
    `n_hot` most selected experts in `profile` (what --moe-hot-profile keeps); 0 without selections."""
    total = int(decoded.sum())
    hot = hot_sets(profile, n_hot)
    return sum(int(decoded[layer, experts].sum()) for layer, experts in hot.items()) / total if total else 0.0


def hit_rates(counts: np.ndarray, hot: dict[int, list[int]]) -> list[float | None]:
    """By layer of the model: the share of its selections in `counts` that are hot experts;
    None for a layer without hot experts or without selections."""
    rates: list[float | None] = [None] * counts.shape[0]
    for layer, experts in hot.items():
        total = int(counts[layer].sum())
        rates[layer] = int(counts[layer, experts].sum()) / total if total else None
    return rates
