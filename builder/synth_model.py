"""Synthetic MoE GGUF models with random weights, for tests and benchmarks.

`write_moe_model()` writes a GGUF file that the pinned llama.cpp loads and runs:
the architecture's metadata keys and tensors, random weights and the tokenizer
copied from a vocab-only GGUF (`models/ggml-vocab-NAME.gguf` in a llama.cpp tree).
The command line is `python -m builder make-model` (`scripts/make-moe-gguf`).

Architectures (llama.cpp b11549 names):

* ``qwen3moe``  - Qwen3-30B-A3B layout: GQA with per-head q/k norms, routed experts only.
* ``olmoe``     - OLMoE: full-width q/k norms, needs kv-heads == heads, untied output.
* ``llama``     - Mixtral layout: arch "llama" with ``ffn_*_exps`` expert tensors
  (alias ``mixtral``).
* ``deepseek2`` - DeepSeek-V2/V3 layout: MLA attention (split ``attn_k_b``/``attn_v_b``),
  leading dense FFN layers, shared experts next to the routed ones.

Weights (seeded, each tensor from its own stream derived from ``seed`` and its name,
so a tensor does not change when another option changes the others):

* norms are 1;
* a matrix that reads the residual stream or a hidden state has entries N(0, 1/fan_in),
  so its outputs have unit variance;
* a matrix that writes into the residual stream (attn_output, ffn_down*, *_down_exps)
  has entries N(0, 0.5/(fan_in * n_layer)), so all layers together add at most about
  the embedding's variance to the residual stream and activations stay finite;
* the token embedding is N(0, 1);
* the router (``ffn_gate_inp``, always F32, as llama-quantize keeps it) gives router
  logits with unit standard deviation; see ``--router-skew`` for the skewed variant.

These are the distributions of the float types (normal floats). The quantized types draw
random blocks directly instead (quantizing floats would take minutes for a 30B model): the
values of a block are d * s * (q - z), q uniform random over the type's range, z its middle,
d a per-tensor magnitude with a random sign per block, s a Q4_K sub-block scale in 32..63,
so they have mean 0 and the same standard deviation as the normal floats (not their shape).

Router skew S (``ModelSpec.router_skew``): S = 0 leaves the router uniformly random,
every expert equally likely. S > 0 makes channel 0 of the residual stream a constant
"bias line": every token embedding has the value sqrt(n_embd - 1) there (the same
energy as all the other channels together), no matrix reads channel 0 (its column is
zero) and none writes it (its row is zero), so after the RMS norm it holds about
sqrt(n_embd / 2) in every layer and every token. Each MoE layer draws a random
permutation of its experts (its popularity order); the router weight of the expert at
popularity rank r (1 = hottest) on channel 0 is chosen so that this expert's router
logit gets the additive term ``-S * ln(r)`` in units of the random part's standard
deviation. With a softmax router this is a prior proportional to ``r ** -S`` (Zipf with
exponent S) on top of the random part, so routing concentrates on the first few
experts of the permutation: the larger S, the stronger. The permutation is in the
``--json`` summary (``hot_experts``), with a Monte-Carlo estimate of the share of
routed slots that go to the ``n_expert_used`` hottest experts (``hot_share_estimate``).
The estimate models the router logits at the first MoE layer; deeper layers see a
somewhat weaker skew as the residual stream grows (the bias term shrinks by up to ~20%
in the last layers, the random part grows by about as much).

Types: F32, F16, BF16 and the random blocks of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q4_K
(all read back with ``gguf.quants.dequantize``); other K-quants are refused, except Q6_K for the
routed experts' down projections (``ModelSpec.down_types``, a type per MoE layer in turn, as
llama-quantize's Q4_K_M mixes Q6_K and Q4_K there), which read no bias channel. Where floats
are quantized after all (the embedding's first block of each row under a router skew,
which holds the constant channel 0), ``gguf.quants`` does it, or for Q4_K a plain min/max
fit per 32-value sub-block here (``gguf.quants`` cannot quantize K-quants).
1-D tensors (norms) and the router stay F32. The main row sizes (n_embd, expert_ff,
heads*head_dim, the dense ff) must be multiples of the type's block size; the
DeepSeek MLA-internal matrices whose rows are q_lora_rank, kv_lora_rank or the
no-rope head dim fall back to Q8_0 (or F16 when not a multiple of 32), as
llama-quantize does for incompatible tensors.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar

import gguf
import numpy as np

from .errors import UsageError
from .fetch import ensure_source
from .settings import add_source_arguments, settings_from_args

ARCHS = ("qwen3moe", "olmoe", "llama", "deepseek2")
ARCH_ALIASES = {"mixtral": "llama", "llama-moe": "llama", "qwen3-moe": "qwen3moe", "deepseek-v2": "deepseek2"}

# vocab GGUF used when --vocab is not given: the family's real tokenizer where the tree has it
DEFAULT_VOCAB = {"qwen3moe": "qwen2", "olmoe": "gpt-2", "llama": "llama-spm", "deepseek2": "deepseek-llm"}

TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K")
DOWN_TYPES = (*TYPES, "Q6_K")
"""What --down-type takes: the types, and Q6_K as random blocks (down experts read no bias channel, so need no quantizer)."""
V3_WEIGHTS_SCALE = 2.5
"""DeepSeek-V3's routed_scaling_factor."""
V3_BIAS_STD = 0.1
"""The standard deviation of the random selection bias (exp_probs_b) of --v3-routing."""

ENV_LLAMA_TREE = "EXPERTS_FIRST_LLAMA_TREE"

T = TypeVar("T")


@dataclass
class ModelSpec:
    """Shape and content of a synthetic MoE model. Defaults make a small CI model."""

    arch: str = "qwen3moe"
    """llama.cpp architecture: qwen3moe, olmoe, llama (Mixtral-style) or deepseek2."""
    n_layer: int = 4
    """Number of transformer blocks (deepseek2: including the leading dense ones)."""
    n_embd: int = 256
    """Width of the residual stream (hidden size)."""
    n_expert: int = 16
    """Routed experts per MoE layer."""
    n_expert_used: int = 4
    """Experts each token is routed to (top-k)."""
    expert_ff: int = 256
    """Intermediate size of one expert's FFN (gate/up rows, down columns)."""
    n_head: int = 4
    """Attention (query) heads."""
    n_head_kv: Optional[int] = None
    """Key/value heads (GQA). None: n_head for olmoe, else n_head // 2 (or n_head when odd). deepseek2 (MLA) ignores it."""
    head_dim: Optional[int] = None
    """Per-head size. None: n_embd // n_head. olmoe needs n_embd // n_head. deepseek2: qk no-rope and v head size."""
    n_ctx: int = 4096
    """Training context length written to the metadata."""
    type: str = "Q4_0"
    """Tensor type of the 2-D/3-D weights: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 or Q4_K."""
    seed: int = 0
    """Seed of all random weights; the same spec and seed give the same file."""
    router_skew: float = 0.0
    """0: uniform random router. S > 0: expert at popularity rank r gets a -S*ln(r) logit bias (Zipf prior r**-S); see module docs."""
    tie_embeddings: bool = False
    """Omit output.weight and let llama.cpp reuse token_embd (smaller file; not for olmoe). Tied random
    embeddings make greedy decoding repeat the prompt's last token, so the default writes an output matrix."""
    n_ff: Optional[int] = None
    """deepseek2: intermediate size of the leading dense FFN layers. None: expert_ff * n_expert_used."""
    n_dense_layers: int = 1
    """deepseek2: number of leading dense (non-MoE) layers."""
    n_shared_experts: int = 1
    """deepseek2: shared experts per MoE layer (one FFN of width expert_ff * n_shared_experts)."""
    v3_routing: bool = False
    """deepseek2: DeepSeek-V3's routing (GLM-4.5's and Kimi K2's too): sigmoid gating, a per-expert selection bias
    (exp_probs_b, random N(0, 0.1)) that picks the experts but not their weights, and the weights normalised and scaled
    by 2.5. False: softmax gating, weights as they come (DeepSeek-V2)."""
    q_lora_rank: Optional[int] = None
    """deepseek2: rank of the query compression (attn_q_a/attn_q_b). None: n_embd // 2; 0: plain attn_q."""
    kv_lora_rank: Optional[int] = None
    """deepseek2: rank of the KV compression (the MLA latent). None: 4 * rope_dim."""
    rope_dim: Optional[int] = None
    """deepseek2: rotary part of each q/k head (qk_rope_head_dim). None: head_dim // 2."""
    rope_freq_base: Optional[float] = None
    """RoPE base frequency. None: 1e6 for qwen3moe, 10000 otherwise."""
    name: str = ""
    """general.name. Empty: "synthetic-<arch>"."""
    down_types: tuple[str, ...] = ()
    """The routed experts' down projection type of each MoE layer in turn, cycling (empty: type). Q6_K too: llama-quantize's
    Q4_K_M keeps the down experts of some layers in Q6_K, so a model's layers differ in their experts' bytes."""

    # --- derived values -------------------------------------------------------------

    def down_type(self, moe_layer: int) -> str:
        """The type of the down experts of the moe_layer-th layer with experts."""
        return self.down_types[moe_layer % len(self.down_types)] if self.down_types else self.type

    def kv_heads(self) -> int:
        if self.arch == "deepseek2":
            return 1
        if self.n_head_kv is not None:
            return self.n_head_kv
        if self.arch == "olmoe" or self.n_head % 2:
            return self.n_head
        return self.n_head // 2

    def hdim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.n_embd // max(self.n_head, 1)

    def dense_ff(self) -> int:
        return self.n_ff if self.n_ff is not None else self.expert_ff * self.n_expert_used

    def mla_rope(self) -> int:
        return self.rope_dim if self.rope_dim is not None else self.hdim() // 2

    def mla_kv_lora(self) -> int:
        return self.kv_lora_rank if self.kv_lora_rank is not None else 4 * self.mla_rope()

    def mla_q_lora(self) -> int:
        if self.ds2_is_lite():
            return 0
        return self.q_lora_rank if self.q_lora_rank is not None else self.n_embd // 2

    def ds2_is_lite(self) -> bool:
        # llama.cpp treats these layer counts as "lite" (no q_lora_rank key, plain attn_q)
        return self.n_layer in (26, 27)

    def freq_base(self) -> float:
        if self.rope_freq_base is not None:
            return self.rope_freq_base
        return 1e6 if self.arch == "qwen3moe" else 10000.0

    def tied(self) -> bool:
        return self.tie_embeddings and self.arch != "olmoe"

    def moe_layers(self) -> list[int]:
        first = self.n_dense_layers if self.arch == "deepseek2" else 0
        return list(range(first, self.n_layer))


# ------------------------------------------------------------------------------------
# validation


def normalize_spec(spec: ModelSpec) -> ModelSpec:
    """Return a copy with aliases resolved (arch, type case); raise UsageError on bad input."""
    arch = ARCH_ALIASES.get(spec.arch.lower(), spec.arch.lower())
    qtype = spec.type.upper()
    spec = dataclasses.replace(spec, arch=arch, type=qtype, down_types=tuple(t.upper() for t in spec.down_types))
    validate_spec(spec)
    return spec


def _block_size(qtype: str) -> int:

    return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]][0]


def validate_spec(spec: ModelSpec) -> None:
    """Raise UsageError for a spec that cannot make a loadable model."""
    if spec.arch not in ARCHS:
        raise UsageError(
            f"unknown architecture {spec.arch!r}",
            f"use one of: {', '.join(ARCHS)} (aliases: {', '.join(sorted(ARCH_ALIASES))})",
        )
    if spec.type not in TYPES:
        extra = ""
        if spec.type.endswith("_K") or "_K_" in spec.type:
            extra = " (gguf.quants cannot quantize K-quants; only Q4_K has a quantizer here)"
        raise UsageError(f"unknown or unsupported tensor type {spec.type!r}{extra}", f"use one of: {', '.join(TYPES)}")
    for t in spec.down_types:
        if t not in DOWN_TYPES:
            raise UsageError(f"unknown or unsupported down expert type {t!r}", f"use one of: {', '.join(DOWN_TYPES)}")
    for fname in ("n_layer", "n_embd", "n_expert", "n_expert_used", "expert_ff", "n_head", "n_ctx"):
        if getattr(spec, fname) < 1:
            raise UsageError(f"{fname} must be at least 1, got {getattr(spec, fname)}")
    if spec.n_expert_used > spec.n_expert:
        raise UsageError(
            f"experts_used ({spec.n_expert_used}) is larger than experts ({spec.n_expert})",
            "pass --experts-used at most --experts",
        )
    if spec.router_skew < 0 or not math.isfinite(spec.router_skew):
        raise UsageError(f"router skew must be a finite number >= 0, got {spec.router_skew}")
    if spec.n_embd % spec.n_head:
        raise UsageError(
            f"embd ({spec.n_embd}) is not divisible by heads ({spec.n_head})",
            "pick --embd as a multiple of --heads",
        )
    hd = spec.hdim()
    if hd < 2 or hd % 2:
        raise UsageError(f"head dim must be even and >= 2 for RoPE, got {hd}", "pass --head-dim or change --embd/--heads")
    if spec.arch != "deepseek2":
        kv = spec.kv_heads()
        if kv < 1 or spec.n_head % kv:
            raise UsageError(f"heads ({spec.n_head}) is not a multiple of kv-heads ({kv})", "pick --kv-heads dividing --heads")
    if spec.arch == "olmoe":
        if spec.kv_heads() != spec.n_head:
            raise UsageError("olmoe needs kv-heads == heads (its k norm spans the full width)", "drop --kv-heads for olmoe")
        if spec.head_dim is not None and spec.head_dim != spec.n_embd // spec.n_head:
            raise UsageError("olmoe needs head-dim == embd / heads", "drop --head-dim for olmoe")
    if spec.arch == "deepseek2":
        if not 0 <= spec.n_dense_layers < spec.n_layer:
            raise UsageError(
                f"deepseek2 needs 0 <= dense layers < layers, got {spec.n_dense_layers} of {spec.n_layer}",
                "lower --dense-layers or raise --layers",
            )
        if spec.n_shared_experts < 1:
            raise UsageError("deepseek2 needs at least one shared expert", "pass --shared-experts 1 or more")
        rope = spec.mla_rope()
        if rope < 2 or rope % 2:
            raise UsageError(f"deepseek2 rope dim must be even and >= 2, got {rope}", "pass --rope-dim")
        if spec.mla_kv_lora() < 1 or spec.mla_q_lora() < 0:
            raise UsageError("deepseek2 lora ranks must be positive", "pass --kv-lora-rank / --q-lora-rank")
    elif spec.v3_routing:
        raise UsageError(f"DeepSeek-V3's routing (--v3-routing) is deepseek2's, not {spec.arch}'s", "pass --arch deepseek2")
    # block sizes: the main row sizes must fit the quant block, the down experts' rows (expert-ff) their own types' blocks
    rows = {"embd": spec.n_embd, "expert-ff": spec.expert_ff, "heads*head-dim": spec.n_head * hd}
    if spec.arch == "deepseek2" and spec.n_dense_layers:
        rows["ff (dense layers)"] = spec.dense_ff()
    _check_blocks(spec.type, rows)
    for t in spec.down_types:
        _check_blocks(t, {"expert-ff": spec.expert_ff})


def _check_blocks(qtype: str, rows: dict[str, int]) -> None:
    """Raise UsageError where a row size is not a multiple of the type's block size."""
    bs = _block_size(qtype)
    for what, n in rows.items():
        if n % bs:
            raise UsageError(
                f"{qtype} packs rows in blocks of {bs} values, but {what} = {n} is not a multiple of {bs}",
                f"pick sizes that are multiples of {bs}, or a type with smaller blocks (Q8_0/Q4_0: 32, F16/F32: 1)",
            )


# ------------------------------------------------------------------------------------
# vocab


def resolve_vocab(vocab: Optional[str], arch: str, llama_tree: Optional[str | Path]) -> Path:
    """Find the vocab GGUF: a path (exists, or has a '/' or ends in .gguf) or a NAME in <tree>/models/."""
    arch = ARCH_ALIASES.get(arch.lower(), arch.lower())
    name = vocab or DEFAULT_VOCAB.get(arch, "qwen2")
    if vocab and (os.sep in vocab or "/" in vocab or vocab.endswith(".gguf") or Path(vocab).is_file()):
        path = Path(vocab).expanduser()
        if not path.is_file():
            raise UsageError(
                f"vocab file {str(path)!r} not found",
                "pass an existing vocab-only GGUF, or a NAME such as qwen2 with --llama-tree DIR",
            )
        return path
    tree = llama_tree or os.environ.get(ENV_LLAMA_TREE)
    if not tree:
        raise UsageError(
            f"vocab {name!r} is a name, but no llama.cpp tree was given to look it up in",
            f"pass --llama-tree DIR (it holds models/ggml-vocab-{name}.gguf), set {ENV_LLAMA_TREE}, "
            "or pass --vocab /path/to/ggml-vocab-NAME.gguf",
        )
    models = Path(tree).expanduser() / "models"
    path = models / f"ggml-vocab-{name}.gguf"
    if not path.is_file():
        known = sorted(p.name[len("ggml-vocab-"):-len(".gguf")] for p in models.glob("ggml-vocab-*.gguf"))
        raise UsageError(
            f"vocab {name!r} not found: looked for {path}",
            (f"names available there: {', '.join(known)}" if known else f"{models} has no ggml-vocab-*.gguf; "
             "check --llama-tree") + "; or pass --vocab /path/to/file.gguf",
        )
    return path


def _read_gguf_kv(path: Path) -> dict[str, tuple[Any, int, Optional[int]]]:
    """All metadata of a GGUF file as {key: (value, value_type, array_sub_type)}.

    A direct parser of the (little-endian, v2/v3) header: much faster than
    gguf.GGUFReader on 150k-token vocab files, and it never touches tensor data.
    """
    import struct

    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    data = path.read_bytes()
    if data[:4] != b"GGUF":
        raise ValueError("not a GGUF file (bad magic)")
    version, _n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    if version < 2:
        raise ValueError(f"GGUF version {version} is not supported")
    off = 24

    def read_str(o: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", data, o)
        return data[o + 8:o + 8 + n].decode("utf-8"), o + 8 + n

    def read_val(t: int, o: int) -> tuple[Any, int]:
        if t == 8:
            return read_str(o)
        fmt = scalar[t]
        return struct.unpack_from(fmt, data, o)[0], o + struct.calcsize(fmt)

    out: dict[str, tuple[Any, int, Optional[int]]] = {}
    for _ in range(n_kv):
        key, off = read_str(off)
        (vt,) = struct.unpack_from("<I", data, off)
        off += 4
        if vt == 9:
            sub, n = struct.unpack_from("<IQ", data, off)
            off += 12
            if sub == 8:
                vals = []
                for _ in range(n):
                    (ln,) = struct.unpack_from("<Q", data, off)
                    vals.append(data[off + 8:off + 8 + ln].decode("utf-8"))
                    off += 8 + ln
            elif sub in scalar:
                fmt = scalar[sub]
                size = struct.calcsize(fmt)
                vals = list(struct.unpack_from(f"<{n}{fmt[1]}", data, off))
                off += n * size
            else:
                raise ValueError(f"nested arrays are not supported (key {key})")
            out[key] = (vals, vt, sub)
        else:
            val, off = read_val(vt, off)
            out[key] = (val, vt, None)
    return out


def read_tokenizer_fields(vocab_gguf: Path) -> tuple[list[tuple[str, Any, Any, Any]], int]:
    """(key, value, GGUFValueType, sub_type) for every tokenizer.* key, and the token count."""

    try:
        kv = _read_gguf_kv(Path(vocab_gguf))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad input file
        raise UsageError(f"cannot read vocab GGUF {vocab_gguf}: {exc}",
                         "pass a vocab-only GGUF such as llama.cpp's models/ggml-vocab-qwen2.gguf") from exc
    out = []
    for key, (val, vt, sub) in kv.items():
        if not key.startswith("tokenizer."):
            continue
        if vt == 9 and len(val) == 0:
            continue
        out.append((key, val, gguf.GGUFValueType(vt), None if sub is None else gguf.GGUFValueType(sub)))
    tokens = kv.get("tokenizer.ggml.tokens", ([], 0, None))[0]
    if not tokens:
        raise UsageError(f"{vocab_gguf} has no tokenizer.ggml.tokens", "pass a vocab GGUF from llama.cpp/models")
    return out, len(tokens)


# ------------------------------------------------------------------------------------
# quantization


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """Quantize float rows (last dim a multiple of 256) to Q4_K blocks; returns uint8 (..., n/256*144).

    Per 32-value sub-block: min/max fit, x ~= d*sc*q - dmin*m with q in 0..15 and 6-bit sc, m.
    """

    shape = x.shape
    blocks = x.reshape(-1, 8, 32).astype(np.float32)
    nb = blocks.shape[0]
    mn = np.minimum(blocks.min(axis=-1), 0.0)  # (nb, 8) <= 0
    mx = blocks.max(axis=-1)
    scale_f = (mx - mn) / 15.0  # (nb, 8) >= 0
    min_f = -mn  # >= 0
    d = (scale_f.max(axis=-1) / 63.0).astype(np.float16)  # (nb,)
    dmin = (min_f.max(axis=-1) / 63.0).astype(np.float16)
    d32 = d.astype(np.float32)[:, None]
    dm32 = dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.rint(scale_f / d32), 0)
        m = np.where(dm32 > 0, np.rint(min_f / dm32), 0)
    sc = np.clip(sc, 0, 63).astype(np.uint8)
    m = np.clip(m, 0, 63).astype(np.uint8)
    step = (d32 * sc)[:, :, None]  # (nb, 8, 1)
    off = (dm32 * m)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step > 0, np.rint((blocks + off) / step), 0)
    q = np.clip(q, 0, 15).astype(np.uint8)  # (nb, 8, 32)

    scales = np.empty((nb, 12), dtype=np.uint8)
    scales[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(nb, 128)

    out = np.empty((nb, 144), dtype=np.uint8)
    out[:, 0:2] = d.view(np.uint8).reshape(nb, 2)
    out[:, 2:4] = dmin.view(np.uint8).reshape(nb, 2)
    out[:, 4:16] = scales
    out[:, 16:144] = qs
    return out.reshape(*shape[:-1], shape[-1] // 256 * 144)


def quantize(x: np.ndarray, qtype: str) -> np.ndarray:
    """Float32 array -> the array GGUFWriter stores for `qtype` (float or uint8 blocks)."""

    if qtype == "F32":
        return x.astype(np.float32, copy=False)
    if qtype == "F16":
        return x.astype(np.float16)
    if qtype == "Q4_K":
        return quantize_q4_k(x)
    return gguf.quants.quantize(x.astype(np.float32, copy=False), gguf.GGMLQuantizationType[qtype])


# ------------------------------------------------------------------------------------
# random quantized blocks
#
# Quantizing random floats runs at ~35M values/s (minutes for a 30B-parameter model), so the
# quantized weights are random blocks (see the module docs): values d * s * (q - z) with q
# from random bits, so q = z is an exact 0. Generating them runs at about 1 GB/s.


@dataclass(frozen=True)
class RandomBlocks:
    """What a quantized type's blocks need besides random bits (byte offsets are within a block)."""

    rms: float
    """Root mean square of s * (q - z) over uniform random q (and s); d = std / rms."""
    min_factor: float = 0.0
    """The type's fp16 min at byte 2 (Q4_1, Q5_1: m; Q4_K: dmin) is min_factor * d; 0: no min."""
    zero: tuple[tuple[int, int, int], ...] = ()
    """(byte, keep mask, set bits) edits that make the block's first value q = z, an exact 0."""
    d_offset: int = 0
    """Where the block's fp16 d is (Q6_K: after its quants and scales)."""


def _uniform_rms(n: int, z: int) -> float:
    """Root mean square of q - z for q uniform in 0..n-1."""
    return math.sqrt(sum((q - z) ** 2 for q in range(n)) / n)


Q4_K_SCALE_RMS = math.sqrt(sum(s * s for s in range(32, 64)) / 32)

RANDOM_BLOCKS = {
    # Q8_0: d, 32 int8 q (z = 0); Q4_0: d, 16 bytes of nibbles (z = 8), value j in byte j % 16
    "Q8_0": RandomBlocks(_uniform_rms(256, 128), zero=((2, 0x00, 0x00),)),
    "Q4_0": RandomBlocks(_uniform_rms(16, 8), zero=((2, 0xF0, 0x08),)),
    # Q4_1: d, m, nibbles; value d*q + m with m = -8d
    "Q4_1": RandomBlocks(_uniform_rms(16, 8), -8.0, ((4, 0xF0, 0x08),)),
    # Q5_0/Q5_1: d, (m,) 32 high bits (value j: bit j), low nibbles; z = 16: nibble 0, high bit 1
    "Q5_0": RandomBlocks(_uniform_rms(32, 16), zero=((2, 0xFF, 0x01), (6, 0xF0, 0x00))),
    "Q5_1": RandomBlocks(_uniform_rms(32, 16), -16.0, ((4, 0xFF, 0x01), (8, 0xF0, 0x00))),
    # Q4_K: d, dmin, 12 bytes of 6-bit scales and mins, nibbles; value d*sc*q - dmin*m with dmin = 8d, m = sc
    "Q4_K": RandomBlocks(_uniform_rms(16, 8) * Q4_K_SCALE_RMS, 8.0, ((16, 0xF0, 0x08),)),
    # Q6_K: 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d; value d*sc*(q - 32), sc in 32..63;
    # value 0: low nibble 0 in byte 0, bits 0-1 of byte 128 = 2
    "Q6_K": RandomBlocks(_uniform_rms(64, 32) * Q4_K_SCALE_RMS, zero=((0, 0xF0, 0x00), (128, 0xFC, 0x02)), d_offset=208),
}


def _set_fp16(blocks: np.ndarray, offset: int, value: "np.float16", sign: np.ndarray) -> None:
    """Store |value| as the fp16 at `offset` of each block, with that block's sign bit from `sign` (0 or 0x80)."""

    lo, hi = np.abs(np.array([value], dtype=np.float16)).view(np.uint8)
    blocks[:, offset] = lo
    blocks[:, offset + 1] = sign | hi


def _set_q4_k_scales(scales: np.ndarray) -> None:
    """Turn the random 12 scale bytes of Q4_K blocks into random 6-bit scales sc in 32..63 and mins m = sc.

    Bytes 0-3 hold sc[0:4] in bits 0-5 and bits 4-5 of sc[4:8] in bits 6-7, bytes 4-7 the
    same for m, bytes 8-11 bits 0-3 of sc[4:8] (low nibble) and of m[4:8] (high nibble).
    """
    sc_lo = scales[:, 0:4] | 0xA0  # bit 5: sc[0:4] >= 32; bit 7 (bit 5 of sc[4:8]): sc[4:8] >= 32
    scales[:, 0:4] = sc_lo
    scales[:, 4:8] = sc_lo
    nibble = scales[:, 8:12] & 0x0F
    scales[:, 8:12] = nibble | (nibble << 4)


def random_blocks(qtype: str, n_blocks: int, std: float, rng: "np.random.Generator") -> np.ndarray:
    """`n_blocks` random blocks of a quantized type (uint8, (n_blocks, block bytes)); values: mean 0, std `std`."""

    fmt = RANDOM_BLOCKS[qtype]
    size = tensor_nbytes((_block_size(qtype),), qtype)
    n = n_blocks * size
    blocks = rng.bit_generator.random_raw(-(-n // 8)).view(np.uint8)[:n].reshape(n_blocks, size)
    sign = blocks[:, fmt.d_offset + 1] & 0x80  # the random sign of each block's d
    d = np.float16(std / fmt.rms)
    _set_fp16(blocks, fmt.d_offset, d, sign)
    if fmt.min_factor:
        _set_fp16(blocks, 2, np.float16(fmt.min_factor * d), sign if fmt.min_factor > 0 else sign ^ 0x80)
    if qtype == "Q4_K":
        _set_q4_k_scales(blocks[:, 4:16])
    if qtype == "Q6_K":
        blocks[:, 192:208] = (blocks[:, 192:208] & 0x1F) | 0x20  # scales 32..63
    return blocks


def tensor_nbytes(shape: tuple[int, ...], qtype: str) -> int:

    bs, ts = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
    n = math.prod(shape)
    return n // bs * ts


FILE_TYPES = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q4_K": 15, "BF16": 32,
}  # gguf.LlamaFileType; Q4_K written as MOSTLY_Q4_K_M


# ------------------------------------------------------------------------------------
# tensor plan


@dataclass
class TensorPlan:
    name: str
    shape: tuple[int, ...]
    """numpy order: (n_expert, rows, ne0) or (rows, ne0) or (ne0,)."""
    qtype: str
    init: str  # "ones", "normal", "embd", "router"
    std: float = 1.0
    zero_col0: bool = False  # does not read the bias channel
    zero_row0: bool = False  # does not write the bias channel
    layer: int = -1

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.shape, self.qtype)

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def is_expert(self) -> bool:
        return self.name.endswith("_exps.weight")


def _fallback_type(qtype: str, ne0: int) -> str:
    if ne0 % _block_size(qtype) == 0:
        return qtype
    if qtype in ("F32", "F16", "BF16"):
        return qtype
    return "Q8_0" if ne0 % 32 == 0 else "F16"


def plan_tensors(spec: ModelSpec, n_vocab: int) -> list[TensorPlan]:
    """Every tensor of the model, in file order, with its type and initialisation."""
    s = spec
    bias = s.router_skew > 0
    E, hd, T = s.n_embd, s.hdim(), s.type
    out_std = lambda fan_in: math.sqrt(0.5 / (fan_in * s.n_layer))  # noqa: E731
    in_std = lambda fan_in: math.sqrt(1.0 / fan_in)  # noqa: E731
    plans: list[TensorPlan] = []

    def add(name, shape, init, std=1.0, qtype=None, reads=False, writes=False, layer=-1):
        if qtype is None:
            qtype = "F32" if len(shape) == 1 or init == "router" else T
        plans.append(TensorPlan(name, tuple(shape), qtype, init, std, bias and reads, bias and writes, layer))

    def mat_in(name, rows, fan_in, layer, qtype=None, reads=True):
        add(name, (rows, fan_in), "normal", in_std(fan_in), qtype=qtype, reads=reads, layer=layer)

    def mat_out(name, fan_in, layer, qtype=None, n_expert=0):
        shape = (n_expert, E, fan_in) if n_expert else (E, fan_in)
        add(name, shape, "normal", out_std(fan_in), qtype=qtype, writes=True, layer=layer)

    add("token_embd.weight", (n_vocab, E), "embd")
    add("output_norm.weight", (E,), "ones")
    if not s.tied():
        add("output.weight", (n_vocab, E), "normal", in_std(E), reads=True)

    for il in range(s.n_layer):
        p = f"blk.{il}."
        add(p + "attn_norm.weight", (E,), "ones", layer=il)
        if s.arch == "deepseek2":
            nope, rope, kvr, qr = hd, s.mla_rope(), s.mla_kv_lora(), s.mla_q_lora()
            if qr > 0:
                add(p + "attn_q_a_norm.weight", (qr,), "ones", layer=il)
            add(p + "attn_kv_a_norm.weight", (kvr,), "ones", layer=il)
            if qr > 0:
                mat_in(p + "attn_q_a.weight", qr, E, il)
                mat_in(p + "attn_q_b.weight", s.n_head * (nope + rope), qr, il, qtype=_fallback_type(T, qr), reads=False)
            else:
                mat_in(p + "attn_q.weight", s.n_head * (nope + rope), E, il)
            mat_in(p + "attn_kv_a_mqa.weight", kvr + rope, E, il)
            # wk_b: {nope, kv_lora, n_head}; wv_b: {kv_lora, v_head, n_head}  (ggml order)
            add(p + "attn_k_b.weight", (s.n_head, kvr, nope), "normal", in_std(nope),
                qtype=_fallback_type(T, nope), layer=il)
            add(p + "attn_v_b.weight", (s.n_head, hd, kvr), "normal", in_std(kvr),
                qtype=_fallback_type(T, kvr), layer=il)
            mat_out(p + "attn_output.weight", s.n_head * hd, il)
        else:
            kv = s.kv_heads()
            mat_in(p + "attn_q.weight", s.n_head * hd, E, il)
            mat_in(p + "attn_k.weight", kv * hd, E, il)
            mat_in(p + "attn_v.weight", kv * hd, E, il)
            mat_out(p + "attn_output.weight", s.n_head * hd, il)
            if s.arch == "qwen3moe":
                add(p + "attn_k_norm.weight", (hd,), "ones", layer=il)
                add(p + "attn_q_norm.weight", (hd,), "ones", layer=il)
            elif s.arch == "olmoe":
                add(p + "attn_q_norm.weight", (E,), "ones", layer=il)
                add(p + "attn_k_norm.weight", (E,), "ones", layer=il)
        add(p + "ffn_norm.weight", (E,), "ones", layer=il)
        if s.arch == "deepseek2" and il < s.n_dense_layers:
            ff = s.dense_ff()
            mat_in(p + "ffn_gate.weight", ff, E, il)
            mat_out(p + "ffn_down.weight", ff, il)
            mat_in(p + "ffn_up.weight", ff, E, il)
            continue
        F, X = s.expert_ff, s.n_expert
        add(p + "ffn_gate_inp.weight", (X, E), "router", layer=il)
        if s.v3_routing:
            add(p + "exp_probs_b.bias", (X,), "normal", V3_BIAS_STD, layer=il)
        add(p + "ffn_gate_exps.weight", (X, F, E), "normal", in_std(E), reads=True, layer=il)
        mat_out(p + "ffn_down_exps.weight", F, il, qtype=s.down_type(s.moe_layers().index(il)), n_expert=X)
        add(p + "ffn_up_exps.weight", (X, F, E), "normal", in_std(E), reads=True, layer=il)
        if s.arch == "deepseek2":
            sf = F * s.n_shared_experts
            mat_in(p + "ffn_gate_shexp.weight", sf, E, il)
            mat_out(p + "ffn_down_shexp.weight", sf, il)
            mat_in(p + "ffn_up_shexp.weight", sf, E, il)
    return plans


# ------------------------------------------------------------------------------------
# weights


def _seed(seed: int, name: str) -> int:
    """The seed of the random stream called `name`."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _rng(seed: int, name: str) -> "np.random.Generator":

    return np.random.default_rng(_seed(seed, name))


def expert_ranking(spec: ModelSpec, layer: int) -> list[int]:
    """Experts of a MoE layer, hottest first (the order the router skew favours)."""
    return [int(e) for e in _rng(spec.seed, f"blk.{layer}.router_rank").permutation(spec.n_expert)]


def _router_weights(spec: ModelSpec, layer: int) -> np.ndarray:

    E, X = spec.n_embd, spec.n_expert
    rng = _rng(spec.seed, f"blk.{layer}.ffn_gate_inp.weight")
    if spec.router_skew <= 0:
        # RMS-normed input has |x| = sqrt(E): logits ~ N(0, 1)
        return (rng.standard_normal((X, E), dtype=np.float32) / np.float32(math.sqrt(E))).astype(np.float32)
    # channel 0 holds ~sqrt(E/2) after the norm; the other channels carry the remaining E/2 energy
    w = rng.standard_normal((X, E), dtype=np.float32) * np.float32(math.sqrt(2.0 / E))
    x0 = math.sqrt(E / 2.0)
    for rank, e in enumerate(expert_ranking(spec, layer), start=1):
        w[e, 0] = -spec.router_skew * math.log(rank) / x0
    return w


def _float_slice(spec: ModelSpec, p: TensorPlan, rng, shape) -> np.ndarray:

    if p.init == "ones":
        return np.ones(shape, dtype=np.float32)
    a = rng.standard_normal(shape, dtype=np.float32)
    if p.init == "embd":
        if spec.router_skew > 0:
            a[..., 0] = math.sqrt(spec.n_embd - 1)
        return a
    if p.std != 1.0:
        a *= np.float32(p.std)
    if p.zero_col0:
        a[..., 0] = 0.0
    if p.zero_row0:
        a[..., 0, :] = 0.0
    return a


CHUNK_BYTES = 16 * 2**20
"""About how much of a tensor is generated at a time."""


def tensor_chunks(spec: ModelSpec, p: TensorPlan) -> Iterator[np.ndarray]:
    """The stored data of one planned tensor, in file order, a bounded chunk at a time."""
    if p.init == "router":
        yield _router_weights(spec, p.layer)
    elif p.init in ("normal", "embd") and p.qtype in RANDOM_BLOCKS:
        yield from _random_block_chunks(spec, p)
    else:
        yield from _float_chunks(spec, p)


def _float_chunks(spec: ModelSpec, p: TensorPlan) -> Iterator[np.ndarray]:
    """Random floats, converted to the tensor's type: expert by expert, big matrices in row chunks."""
    rng = _rng(spec.seed, p.name)
    if len(p.shape) == 3:
        for _ in range(p.shape[0]):
            yield quantize(_float_slice(spec, p, rng, p.shape[1:]), p.qtype)
    elif len(p.shape) == 2 and p.shape[0] * p.shape[1] > (1 << 24):
        rows = max(1, (1 << 22) // p.shape[1])
        for r in range(0, p.shape[0], rows):
            yield quantize(_float_slice(spec, p, rng, (min(rows, p.shape[0] - r), p.shape[1])), p.qtype)
    else:
        yield quantize(_float_slice(spec, p, rng, p.shape), p.qtype)


def _random_block_chunks(spec: ModelSpec, p: TensorPlan) -> Iterator[np.ndarray]:
    """Random quantized blocks of std p.std, in chunks of whole rows (uint8, (rows, row bytes)).

    The bias line of the router skew: zero_col0 sets each row's first value to an exact 0,
    zero_row0 zeroes row 0 of each matrix, and the embedding's first block of each row
    (with the constant channel 0) is quantized from floats.
    """

    rng = np.random.Generator(np.random.SFC64(_seed(spec.seed, p.name)))
    height, ne0 = p.shape[-2], p.shape[-1]
    bs, row_bytes = _block_size(p.qtype), tensor_nbytes((ne0,), p.qtype)
    n_rows = math.prod(p.shape[:-1])
    step = max(1, CHUNK_BYTES // row_bytes)
    for r0 in range(0, n_rows, step):
        n = min(step, n_rows - r0)
        blocks = random_blocks(p.qtype, n * (ne0 // bs), p.std, rng).reshape(n, ne0 // bs, -1)
        first = blocks[:, 0]
        if p.init == "embd" and spec.router_skew > 0:
            first[:] = quantize(_float_slice(spec, p, rng, (n, bs)), p.qtype)
        if p.zero_col0:
            for byte, keep, bits in RANDOM_BLOCKS[p.qtype].zero:
                first[:, byte] = (first[:, byte] & keep) | bits
        if p.zero_row0:
            blocks[(r0 + np.arange(n)) % height == 0] = 0
        yield blocks.reshape(n, row_bytes)


# ------------------------------------------------------------------------------------
# writing


def _write_metadata(w, spec: ModelSpec, n_vocab: int) -> None:

    s, a = spec, spec.arch
    w.add_name(s.name or f"synthetic-{a}")
    w.add_string("general.description", "random weights from experts-first builder/synth_model.py")
    w.add_uint32("general.file_type", FILE_TYPES[s.type])
    w.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    w.add_uint32(f"{a}.context_length", s.n_ctx)
    w.add_uint32(f"{a}.embedding_length", s.n_embd)
    w.add_uint32(f"{a}.block_count", s.n_layer)
    w.add_uint32(f"{a}.attention.head_count", s.n_head)
    w.add_uint32(f"{a}.attention.head_count_kv", s.kv_heads())
    w.add_float32(f"{a}.rope.freq_base", s.freq_base())
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-6 if a in ("qwen3moe", "deepseek2") else 1e-5)
    w.add_uint32(f"{a}.expert_count", s.n_expert)
    w.add_uint32(f"{a}.expert_used_count", s.n_expert_used)
    w.add_uint32(f"{a}.vocab_size", n_vocab)
    hd = s.hdim()
    if a == "deepseek2":
        rope, kvr = s.mla_rope(), s.mla_kv_lora()
        w.add_uint32(f"{a}.feed_forward_length", s.dense_ff())
        w.add_uint32(f"{a}.leading_dense_block_count", s.n_dense_layers)
        w.add_uint32(f"{a}.attention.q_lora_rank", s.mla_q_lora())
        w.add_uint32(f"{a}.attention.kv_lora_rank", kvr)
        w.add_uint32(f"{a}.attention.key_length", kvr + rope)
        w.add_uint32(f"{a}.attention.value_length", kvr)
        w.add_uint32(f"{a}.attention.key_length_mla", hd + rope)
        w.add_uint32(f"{a}.attention.value_length_mla", hd)
        w.add_uint32(f"{a}.rope.dimension_count", rope)
        w.add_uint32(f"{a}.expert_feed_forward_length", s.expert_ff)
        w.add_uint32(f"{a}.expert_shared_count", s.n_shared_experts)
        w.add_float32(f"{a}.expert_weights_scale", V3_WEIGHTS_SCALE if s.v3_routing else 1.0)
        w.add_bool(f"{a}.expert_weights_norm", s.v3_routing)
        w.add_uint32(f"{a}.expert_gating_func", 2 if s.v3_routing else 1)  # sigmoid or softmax
    else:
        w.add_uint32(f"{a}.attention.key_length", hd)
        w.add_uint32(f"{a}.attention.value_length", hd)
        w.add_uint32(f"{a}.rope.dimension_count", hd)
        if a == "qwen3moe":
            w.add_uint32(f"{a}.feed_forward_length", s.expert_ff * s.n_expert_used)
            w.add_uint32(f"{a}.expert_feed_forward_length", s.expert_ff)
        else:  # olmoe, llama: the expert tensors use feed_forward_length
            w.add_uint32(f"{a}.feed_forward_length", s.expert_ff)


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """Yield the items of `items`, making the next one in a worker thread while the caller uses this one.

    Overlaps generating tensor data (numpy, mostly without the GIL) with writing it to disk.
    """
    from concurrent.futures import ThreadPoolExecutor

    end = object()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(next, items, end)
        while (item := future.result()) is not end:
            future = pool.submit(next, items, end)
            yield item


def write_moe_model(
    path: str | Path,
    spec: ModelSpec,
    vocab_gguf: str | Path,
    progress: Optional[Callable[[str], None]] = None,
) -> dict[str, Any]:
    """Write the synthetic model to `path`; return the summary that `--json` prints.

    Raises UsageError (a BuilderError) for an invalid spec or an unreadable vocab file.
    """

    spec = normalize_spec(spec)
    vocab_gguf = Path(vocab_gguf)
    if not vocab_gguf.is_file():
        raise UsageError(f"vocab file {str(vocab_gguf)!r} not found", "pass an existing vocab-only GGUF")
    tok_fields, n_vocab = read_tokenizer_fields(vocab_gguf)
    plans = plan_tensors(spec, n_vocab)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    verbose = sum(p.nbytes for p in plans) > 256 * 2**20  # report progress on big models only
    t0 = time.monotonic()
    w = gguf.GGUFWriter(tmp, spec.arch)
    try:
        _write_metadata(w, spec, n_vocab)
        for key, val, vtype, sub in tok_fields:
            w.add_key_value(key, val, vtype, sub_type=sub)
        for p in plans:
            if p.qtype in ("F32", "F16"):
                dt = np.float32 if p.qtype == "F32" else np.float16
                w.add_tensor_info(p.name, p.shape, np.dtype(dt), p.nbytes)
            else:
                w.add_tensor_info(p.name, p.shape, np.dtype(np.float32), p.nbytes,
                                  raw_dtype=gguf.GGMLQuantizationType[p.qtype])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        fout = w.fout[0]  # a single file (no splits): tensor data is streamed into it chunk by chunk
        for i, p in enumerate(plans):
            w.write_padding(fout, fout.tell())
            nbytes = 0
            for chunk in _read_ahead(tensor_chunks(spec, p)):
                chunk.tofile(fout)
                nbytes += chunk.nbytes
            assert nbytes == p.nbytes, (p.name, nbytes, p.nbytes)
            last_of_layer = i == len(plans) - 1 or plans[i + 1].layer != p.layer
            if progress and verbose and last_of_layer and p.layer >= 0:
                progress(f"layer {p.layer + 1}/{spec.n_layer} written ({time.monotonic() - t0:.0f}s)")
        w.write_padding(fout, fout.tell())
        w.close()
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return summarize(path, spec, plans, vocab_gguf, n_vocab, time.monotonic() - t0)


def hot_share_estimate(spec: ModelSpec, layer: int, samples: int = 4000) -> float:
    """Monte-Carlo share of routed slots that land on the n_expert_used hottest experts (first-layer statistics)."""

    X, k = spec.n_expert, spec.n_expert_used
    rng = np.random.default_rng(12345)
    bias = np.zeros(X)
    rank = expert_ranking(spec, layer)
    for r, e in enumerate(rank, start=1):
        bias[e] = -spec.router_skew * math.log(r)
    logits = rng.standard_normal((samples, X)) + bias
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    hot = set(rank[:k])
    return float(np.isin(top, list(hot)).sum() / (samples * k))


def summarize(path: Path, spec: ModelSpec, plans: list[TensorPlan], vocab: Path, n_vocab: int,
              seconds: float) -> dict[str, Any]:
    moe = spec.moe_layers()
    first = moe[0] if moe else -1
    exp_bytes = sum(p.nbytes for p in plans if p.is_expert and p.layer == first)
    summary: dict[str, Any] = {
        "path": str(path),
        "arch": spec.arch,
        "type": spec.type,
        "n_params": sum(p.n_elements for p in plans),
        "bytes": path.stat().st_size,
        "n_vocab": n_vocab,
        "vocab": str(vocab),
        "moe_layers": len(moe),
        "expert_bytes_per_layer": exp_bytes,
        "bytes_per_expert": exp_bytes // spec.n_expert if spec.n_expert else 0,
        "expert_bytes_total": sum(p.nbytes for p in plans if p.is_expert),
        "seconds": round(seconds, 3),
        "spec": dataclasses.asdict(spec),
    }
    if spec.router_skew > 0 and moe:
        summary["hot_experts"] = {str(il): expert_ranking(spec, il)[: spec.n_expert_used] for il in moe}
        summary["hot_share_estimate"] = round(hot_share_estimate(spec, first), 4)
    return summary


# ------------------------------------------------------------------------------------
# command line


def populate_parser(parser: argparse.ArgumentParser) -> None:
    d = ModelSpec()
    parser.description = (parser.description or "") + (
        " Writes a synthetic MoE GGUF with random weights that the pinned llama.cpp loads and runs."
    )
    a = parser.add_argument
    a("-o", "--output", required=True, metavar="OUT.gguf", help="file to write")
    a("--arch", default=d.arch, help=f"architecture: {', '.join(ARCHS)} (mixtral = llama); default %(default)s")
    a("--layers", type=int, default=d.n_layer, help="transformer blocks (default %(default)s)")
    a("--embd", type=int, default=d.n_embd, help="hidden size (default %(default)s)")
    a("--experts", type=int, default=d.n_expert, help="routed experts per layer (default %(default)s)")
    a("--experts-used", type=int, default=d.n_expert_used, help="experts per token (default %(default)s)")
    a("--expert-ff", type=int, default=d.expert_ff, help="intermediate size of one expert (default %(default)s)")
    a("--heads", type=int, default=d.n_head, help="attention heads (default %(default)s)")
    a("--kv-heads", type=int, default=None, help="KV heads (default: heads for olmoe, heads/2 otherwise)")
    a("--head-dim", type=int, default=None, help="per-head size (default embd/heads)")
    a("--ctx", type=int, default=d.n_ctx, help="training context length (default %(default)s)")
    a("--type", default=d.type, help=f"weight type: {', '.join(TYPES)} (default %(default)s)")
    a("--down-type", default="", metavar="TYPE[,TYPE...]",
      help=f"the routed experts' down projection type of each MoE layer in turn, cycling, e.g. Q6_K,Q4_K "
           f"(llama-quantize's Q4_K_M mixes them so): {', '.join(DOWN_TYPES)} (default: --type)")
    a("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    a("--router-skew", type=float, default=d.router_skew, metavar="S",
      help="0: uniform random router; S>0: the expert at popularity rank r (a random permutation per layer) "
           "gets a -S*ln(r) router-logit bias, a Zipf prior r**-S (default %(default)s)")
    a("--tied", action="store_true",
      help="reuse token_embd as the output matrix (smaller file; greedy decoding then repeats tokens; not olmoe)")
    a("--ff", type=int, default=None, help="deepseek2: dense-layer intermediate size (default expert-ff*experts-used)")
    a("--dense-layers", type=int, default=d.n_dense_layers, help="deepseek2: leading dense layers (default %(default)s)")
    a("--shared-experts", type=int, default=d.n_shared_experts, help="deepseek2: shared experts (default %(default)s)")
    a("--v3-routing", action="store_true",
      help="deepseek2: DeepSeek-V3's routing: sigmoid gating, a per-expert selection bias (exp_probs_b), weights normalised "
           f"and scaled by {V3_WEIGHTS_SCALE} (default: V2's softmax)")
    a("--q-lora-rank", type=int, default=None, help="deepseek2: query compression rank, 0 = none (default embd/2)")
    a("--kv-lora-rank", type=int, default=None, help="deepseek2: KV latent rank (default 4*rope-dim)")
    a("--rope-dim", type=int, default=None, help="deepseek2: rotary dims per head (default head-dim/2)")
    a("--vocab", default=None, metavar="NAME|PATH",
      help="vocab-only GGUF to copy the tokenizer from: a path, or NAME for <llama-tree>/models/ggml-vocab-NAME.gguf "
           f"(default per arch: {', '.join(f'{k}={v}' for k, v in DEFAULT_VOCAB.items())})")
    a("--llama-tree", default=None, metavar="DIR", help=f"llama.cpp source tree for vocab names (or ${ENV_LLAMA_TREE})")
    a("--json", action="store_true", help="print a JSON summary on stdout")
    add_source_arguments(parser)  # without --llama-tree, vocab names come from the fetched pinned tree


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
    return ModelSpec(
        arch=args.arch, n_layer=args.layers, n_embd=args.embd, n_expert=args.experts,
        n_expert_used=args.experts_used, expert_ff=args.expert_ff, n_head=args.heads, n_head_kv=args.kv_heads,
        head_dim=args.head_dim, n_ctx=args.ctx, type=args.type, seed=args.seed, router_skew=args.router_skew,
        tie_embeddings=args.tied, n_ff=args.ff, n_dense_layers=args.dense_layers,
        n_shared_experts=args.shared_experts, v3_routing=args.v3_routing, q_lora_rank=args.q_lora_rank, kv_lora_rank=args.kv_lora_rank,
        rope_dim=args.rope_dim, down_types=tuple(t for t in args.down_type.split(",") if t),
    )


def main_make_model(args: argparse.Namespace) -> int:
    spec = normalize_spec(spec_from_args(args))
    tree = args.llama_tree or os.environ.get(ENV_LLAMA_TREE)
    if tree is None and not (args.vocab and Path(args.vocab).is_file()):
        tree = ensure_source(settings_from_args(args)).path
    vocab = resolve_vocab(args.vocab, spec.arch, tree)
    quiet = args.json or getattr(args, "quiet", False)
    progress = None if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = write_moe_model(args.output, spec, vocab, progress=progress)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        mib = summary["bytes"] / 2**20
        print(f"wrote {summary['path']}: {spec.arch} {spec.type}, {summary['n_params'] / 1e6:.1f}M params, "
              f"{mib:.1f} MiB, {summary['expert_bytes_per_layer'] / 2**20:.2f} MiB experts/layer, "
              f"{summary['seconds']:.1f}s")
    return 0
