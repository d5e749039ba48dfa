"""The regression report: typed records, written as JSON (the source of truth) and read back.

`SCHEMA` changes whenever a field changes meaning or goes away; readers refuse other versions.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UsageError

SCHEMA = 2
KIND = "experts-first-regress"


@dataclass(frozen=True)
class Build:
    """One packaged variant, from its dist/<variant>/manifest.json."""

    variant: str
    flavor: str
    version: str
    """The tools' `--version` line."""
    pin: str
    """Upstream tag, e.g. "b11549"."""
    patches: list[str]
    builder: str
    """experts-first version that built it."""


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    gpus: list[str]
    """One "name, memory, driver" line per GPU nvidia-smi lists; empty without one."""
    os: str


@dataclass(frozen=True)
class Settings:
    threads: int
    ctx: int
    chunks: int
    decode_ctx: int
    decode_chunks: int
    bench_pp: int
    bench_tg: int
    bench_reps: int
    """llama-bench -r within each round."""
    repeats: int
    placement: list[str]
    """Arguments every run of both sides gets (e.g. -ngl 999 -ncmoe 999)."""
    route: str
    """Routing mode of the speed runs: trace, learned, trace:FILE, uniform, zipf:S[,seed], or router (the model's own)."""
    corpus: str
    flags: list[str]
    """Arguments every llama-perplexity run gets on top of the placement."""


@dataclass(frozen=True)
class Configuration:
    """One way of running the patched build (its arguments per model are in `ModelResult.hot`)."""

    name: str
    mode: str
    """"off" (the fork's features disabled), "hot" (a fixed hot-expert budget), "adaptive"."""
    hot_share: float | None = None
    """Mode "hot": the share of the model's expert bytes given to hot experts (--moe-hot-mib)."""


@dataclass(frozen=True)
class HotExperts:
    """A hot configuration on one model: its budget and, computed from the profile as the tools
    compute them, the hot experts per layer and the share of the profile's selections they get."""

    configuration: str
    budget_mib: int
    """--moe-hot-mib: the share of the model's expert bytes, rounded up, at least one expert a layer."""
    profile: str
    """--moe-hot-profile: the routing trace the hot experts are picked from (and the hit rates measured on)."""
    n_hot: list[int]
    """Per layer of the model: hot experts (0 where the layer has no experts)."""
    hit_rate: list[float | None]
    """Per layer of the model: share of the profile's routed selections that are hot; None without experts."""


@dataclass(frozen=True)
class Routing:
    """How experts were chosen in the speed runs."""

    mode: str
    controlled: bool
    """True when both sides ran with --moe-route (the upstream side is then the baseline variant)."""
    distinct_per_32: list[float] | None
    """Per MoE layer: mean number of distinct experts per 32 consecutive tokens, from a trace."""
    trace: str | None
    note: str = ""


@dataclass(frozen=True)
class Accuracy:
    configuration: str
    upstream_args: list[str]
    """Arguments upstream's run got besides the shared ones (the configuration's loading, e.g. -nr)."""
    upstream_ppl: float
    ppl: float
    delta_ppl: float
    """PPL / PPL(upstream) - 1, both over the same tokens."""
    mean_kld: float
    kld_p99: float
    max_kld: float
    same_top: float
    """Top-token agreement with upstream, 0..1."""
    rms_dp: float


@dataclass(frozen=True)
class Speed:
    configuration: str
    test: str
    """llama-bench's "pp512"/"tg128", or "decode" (real text, one token per step)."""
    reference_ts: float
    """Median tokens/s of the reference side (upstream, or baseline under controlled routing)."""
    patched_ts: float
    ratio: float
    """Median over rounds of patched ÷ reference in the same round."""
    ratio_min: float
    ratio_max: float
    rounds: int


@dataclass(frozen=True)
class ModelResult:
    name: str
    path: str
    arch: str
    dense: bool
    n_layer: int
    n_expert: int
    n_expert_used: int
    accuracy: list[Accuracy]
    speed: list[Speed]
    speed_reference: str | None
    """The variant the speed ratios divide by."""
    routing: Routing | None
    hot: list[HotExperts]
    """The hot configurations' budgets and hot sets on this model (none for dense models)."""


@dataclass(frozen=True)
class Check:
    model: str
    configuration: str
    metric: str
    value: float | None
    """None: the runs should have measured it but did not (a failed check)."""
    bound: str
    """"max" or "min"."""
    threshold: float
    passed: bool

    def describe(self) -> str:
        rel = "<=" if self.bound == "max" else ">="
        needs = f"(needs {rel} {self.threshold:g})"
        if self.value is None:
            return f"{self.model} / {self.configuration}: {self.metric} was not measured {needs} MISSING"
        verdict = "ok" if self.passed else "REGRESSED"
        return f"{self.model} / {self.configuration}: {self.metric} = {self.value:.6g} {needs} {verdict}"


@dataclass(frozen=True)
class Report:
    created: str
    variant: str
    builds: dict[str, Build]
    """By role: "patched", "upstream" and, under controlled routing, "baseline"."""
    machine: Machine
    settings: Settings
    thresholds: str
    """The thresholds file and its schema, e.g. "regress/thresholds.toml (schema 1)"."""
    configurations: list[Configuration]
    models: list[ModelResult]
    checks: list[Check]
    passed: bool
    schema: int = SCHEMA
    kind: str = KIND
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"


def _build(tp, value):
    """`value` (parsed JSON) as type `tp`: dataclasses, lists, dicts, optionals, scalars."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        return tp(**{k: _build(hints[k], v) for k, v in value.items() if k in known})
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _build(args[0], value)
    if origin is list:
        return [_build(typing.get_args(tp)[0], v) for v in value]
    if origin is dict:
        return {k: _build(typing.get_args(tp)[1], v) for k, v in value.items()}
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def load_report(path: Path) -> Report:
    data = json.loads(path.read_text())
    if data.get("kind") != KIND or data.get("schema") != SCHEMA:
        raise UsageError(f"{path} is not an experts-first regress report of schema {SCHEMA} "
                         f"(kind {data.get('kind')!r}, schema {data.get('schema')!r})",
                         "re-run `python -m builder regress` with this version of the builder")
    return _build(Report, data)
