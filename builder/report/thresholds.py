"""The thresholds file (regress/thresholds.toml) and the checks it makes of a report."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .schema import Check, ModelResult

SCHEMA = 1
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "regress" / "thresholds.toml"
LAYERS = ("default", "dense", "configurations")


@dataclass(frozen=True)
class Metric:
    bound: str
    """"max": the value must not exceed the threshold; "min": must not fall below it."""
    doc: str
    speed: bool = False
    """Measured by the speed runs (absent under --no-speed)."""


METRICS = {
    "delta_ppl": Metric("max", "|PPL(patched) / PPL(upstream) - 1|"),
    "mean_kld": Metric("max", "mean KL divergence from upstream's logits"),
    "same_top": Metric("min", "top-token agreement with upstream"),
    "pp_ratio": Metric("min", "patched / upstream tokens/s, llama-bench prompt processing", speed=True),
    "tg_ratio": Metric("min", "patched / upstream tokens/s, llama-bench generation", speed=True),
    "decode_ratio": Metric("min", "patched / upstream tokens/s, real text one token per step", speed=True),
}


@dataclass(frozen=True)
class Thresholds:
    path: Path
    default: dict[str, float]
    dense: dict[str, float]
    configurations: dict[str, dict[str, float]]

    @property
    def label(self) -> str:
        return f"{self.path.name} (schema {SCHEMA})"

    def bounds(self, configuration: str, dense: bool) -> dict[str, float]:
        return {**self.default, **(self.dense if dense else {}), **self.configurations.get(configuration, {})}


def _metrics(table: object, where: str, path: Path) -> dict[str, float]:
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [{where}] must be a table of metric = number", f"see the comments in {DEFAULT_PATH}")
    for key, value in table.items():
        if key not in METRICS:
            raise UsageError(f"{path}: [{where}] has unknown metric {key!r}", f"known metrics: {', '.join(METRICS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{path}: [{where}] {key} = {value!r} is not a number", "write it as e.g. 0.97 or 1e-4")
    return {k: float(v) for k, v in table.items()}


def load_thresholds(path: Path = DEFAULT_PATH) -> Thresholds:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read thresholds {path}: {exc}", f"pass --thresholds FILE; the default is {DEFAULT_PATH}") from exc
    if data.get("schema") != SCHEMA:
        raise UsageError(f"{path} has thresholds schema {data.get('schema')!r}; this builder reads schema {SCHEMA}",
                         f"update it after {DEFAULT_PATH}")
    unknown = set(data) - {"schema", *LAYERS}
    if unknown:
        raise UsageError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}", f"sections are {', '.join(LAYERS)}")
    configurations = data.get("configurations", {})
    return Thresholds(
        path=path,
        default=_metrics(data.get("default", {}), "default", path),
        dense=_metrics(data.get("dense", {}), "dense", path),
        configurations={name: _metrics(t, f"configurations.{name}", path) for name, t in configurations.items()},
    )


def model_values(model: ModelResult) -> dict[str, dict[str, float]]:
    """Per configuration: the metrics this model's results give, by metric name."""
    values: dict[str, dict[str, float]] = {}
    for a in model.accuracy:
        v = values.setdefault(a.configuration, {})
        v.update(delta_ppl=abs(a.delta_ppl), mean_kld=a.mean_kld, same_top=a.same_top)
    for s in model.speed:
        kind = "decode" if s.test == "decode" else s.test[:2]
        values.setdefault(s.configuration, {})[f"{kind}_ratio"] = s.ratio
    return values


def check_model(model: ModelResult, thresholds: Thresholds) -> list[Check]:
    """One check per bounded metric of each configuration the model ran. A bounded metric that the runs
    should have measured but the results lack fails as not measured (value None)."""
    speed_ran = model.speed_reference is not None
    checks = []
    for configuration, values in model_values(model).items():
        bounds = thresholds.bounds(configuration, model.dense)
        missing = [m for m in bounds if m not in values and (speed_ran or not METRICS[m].speed)]
        for metric in [*(m for m in values if m in bounds), *missing]:
            value, limit, bound = values.get(metric), bounds[metric], METRICS[metric].bound
            passed = value is not None and (value <= limit if bound == "max" else value >= limit)
            checks.append(Check(model.name, configuration, metric, value, bound, limit, passed))
    return checks
