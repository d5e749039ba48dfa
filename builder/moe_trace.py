"""MoE routing traces written by `--moe-trace-out` (patch 0002; format: docs/moe-trace-format.md),
and statistics of them.

A trace records, for every token a context computed and every layer, the experts the router
chose. `distinct_experts_per_window` summarises its locality: how many different experts a
layer needs within a short run of tokens, which bounds what a hot-expert cache can hit;
`selection_counts` is what a hot-expert profile (`--moe-hot-profile`, patch 0003) ranks experts by.
"""

from __future__ import annotations

import lzma
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UsageError

MAGIC = b"MOET"
VERSION = 1
HEADER = struct.Struct("<4sIIII")
RECORD = struct.Struct("<I")


class TraceError(UsageError):
    """A file the user named is not a readable version-1 MoE routing trace."""


@dataclass(frozen=True)
class Trace:
    n_layer: int
    n_expert: int
    n_expert_used: int
    ids: np.ndarray
    """Expert ids, int16 [n_tokens, n_layer, n_expert_used], in the order the tokens were
    computed (all records concatenated); -1: no expert (dense layer, row not computed, padding)."""

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[0])


def read_trace(path: Path) -> Trace:
    """The trace in `path`, compressed with xz where its name ends in .xz."""
    hint = "write it again with --moe-trace-out (docs/moe-trace-format.md)"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read it ({exc.strerror or exc})", hint) from exc
    if Path(path).suffix == ".xz":
        try:
            data = lzma.decompress(data)
        except lzma.LZMAError as exc:
            raise TraceError(f"{path}: not a readable xz file ({exc})", "check it with xz -t, or " + hint) from exc
    if len(data) < HEADER.size:
        raise TraceError(f"{path}: {len(data)} bytes is too short for a MoE trace header", hint)
    magic, version, n_layer, n_expert, n_used = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise TraceError(f"{path}: not a version {VERSION} MoE routing trace (magic {magic!r}, version {version})", hint)
    if not (n_layer and n_expert and n_used) or n_used > n_expert or n_expert > 32768:
        raise TraceError(f"{path}: invalid header (n_layer {n_layer}, n_expert {n_expert}, n_expert_used {n_used})", hint)
    pos, records = HEADER.size, []
    while pos < len(data):
        if pos + RECORD.size > len(data):
            raise TraceError(f"{path}: truncated record at offset {pos}", hint)
        (n_tokens,) = RECORD.unpack_from(data, pos)
        n = n_tokens * n_layer * n_used
        if pos + RECORD.size + 2 * n > len(data):
            raise TraceError(f"{path}: truncated record of {n_tokens} tokens at offset {pos}", hint)
        records.append(np.frombuffer(data, "<i2", n, pos + RECORD.size).reshape(n_tokens, n_layer, n_used))
        pos += RECORD.size + 2 * n
    ids = np.concatenate(records) if records else np.zeros((0, n_layer, n_used), dtype="<i2")
    if ids.size and (ids.min() < -1 or ids.max() >= n_expert):
        raise TraceError(f"{path}: expert ids outside [-1, {n_expert})", hint)
    return Trace(n_layer, n_expert, n_used, ids)


def write_trace(trace: Trace, path: Path) -> None:
    """`trace` as a version-1 file with all its tokens in one record (replays the same: the
    replay cursor ignores record boundaries)."""
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, trace.n_layer, trace.n_expert, trace.n_expert_used))
        f.write(RECORD.pack(trace.n_tokens))
        f.write(trace.ids.astype("<i2").tobytes())


def routed_mask(trace: Trace) -> np.ndarray:
    """[n_tokens] bool: the tokens every routed layer computed. Tools compute the last layer only for the
    rows that produce an output (llama-perplexity: the scored half of each chunk), which the trace
    shows as -1; a replay would fill those with experts 0, 1, ... Layers without any routed token
    (dense layers) do not count."""
    has_ids = (trace.ids >= 0).any(axis=2)  # [n_tokens, n_layer]
    return has_ids[:, has_ids.any(axis=0)].all(axis=1)


def routed_tokens(trace: Trace) -> Trace:
    """Only the tokens every routed layer computed (routed_mask)."""
    return Trace(trace.n_layer, trace.n_expert, trace.n_expert_used, trace.ids[routed_mask(trace)])


def trace_stem(path: Path) -> str:
    """The name of a trace file without its suffixes: learned-prose for learned-prose.moetrace(.xz)."""
    return Path(Path(path).name.removesuffix(".xz")).stem


def read_routed(path: Path, hint: str = "record a trace of at least one full ubatch with --moe-trace-out") -> Trace:
    """The routed tokens of the trace at `path`; an error if it has none."""
    routed = routed_tokens(read_trace(path))
    if routed.n_tokens == 0:
        raise TraceError(f"{path}: no token has experts in every routed layer", hint)
    return routed


def distinct_experts_per_window(trace: Trace, window: int = 32) -> list[float]:
    """Per layer: the mean number of distinct experts over consecutive, non-overlapping windows of
    `window` tokens (the last, partial window is left out; a trace shorter than `window` is one
    window). Negative ids are not experts, so a dense layer gives 0."""
    if window < 1:
        raise ValueError(f"window must be at least 1, not {window}")
    if trace.n_tokens == 0:
        return [0.0] * trace.n_layer
    n_windows = max(trace.n_tokens // window, 1)
    span = min(n_windows * window, trace.n_tokens)
    windows = trace.ids[:span].reshape(n_windows, -1, trace.n_layer, trace.n_expert_used)
    present = np.zeros((n_windows, trace.n_layer, trace.n_expert), dtype=bool)
    w, t, layer, k = np.nonzero(windows >= 0)
    present[w, layer, windows[w, t, layer, k]] = True
    return [float(x) for x in present.sum(axis=2).mean(axis=0)]


def selection_counts(trace: Trace) -> np.ndarray:
    """How often each expert of each layer is selected, int64 [n_layer, n_expert] (what
    --moe-hot-profile counts; negative ids are not selections)."""
    counts = np.zeros((trace.n_layer, trace.n_expert), dtype=np.int64)
    _, layer, _ = np.nonzero(trace.ids >= 0)
    np.add.at(counts, (layer, trace.ids[trace.ids >= 0]), 1)
    return counts


def take_tokens(trace: Trace, start: int, n_tokens: int) -> Trace:
    """Tokens `start` .. `start + n_tokens - 1` of `trace` (fewer where it ends)."""
    return Trace(trace.n_layer, trace.n_expert, trace.n_expert_used, trace.ids[start:start + n_tokens])


def tile_layers(trace: Trace, n_layer: int, seed: int = 0) -> Trace:
    """The routing of `trace` on a model of `n_layer` layers: layer l replays layer l % trace.n_layer.

    Each repetition after the first renames the experts by a random permutation (drawn from `seed`),
    so the layers' hot sets differ while each layer keeps its source layer's skew and temporal
    locality: what a per-layer cache sees is unchanged."""
    rng = np.random.default_rng(seed)
    layers = []
    for layer in range(n_layer):
        ids = trace.ids[:, layer % trace.n_layer, :]
        if layer >= trace.n_layer:
            perm = rng.permutation(trace.n_expert).astype(ids.dtype)
            ids = np.where(ids >= 0, perm[np.maximum(ids, 0)], ids)
        layers.append(ids)
    return Trace(n_layer, trace.n_expert, trace.n_expert_used, np.stack(layers, axis=1))


def fitted_to_model(trace: Trace, path: Path, n_layer: int, n_expert: int, n_expert_used: int) -> Trace:
    """`trace` (read from `path`) for a model of this shape: the experts must match, the layers are tiled
    (`tile_layers`) when the model has another depth. An error names both shapes."""
    if (trace.n_expert, trace.n_expert_used) != (n_expert, n_expert_used):
        raise TraceError(f"{path}: a trace of {trace.n_expert} experts with {trace.n_expert_used} used per token cannot route "
                         f"a model of {n_expert} experts with {n_expert_used} used",
                         f"use a model of that expert layout (make-model --experts {trace.n_expert} --experts-used "
                         f"{trace.n_expert_used}), or a trace recorded on this model (--moe-trace-out)")
    return trace if trace.n_layer == n_layer else tile_layers(trace, n_layer)
