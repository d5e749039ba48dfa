"""Summaries of llama-bench results: medians per variant and test, and fork ÷ baseline ratios."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSummary:
    build: str
    """llama-bench's build_commit: which variant ran (e.g. "upstream", "experts-first-0.1.0+f9f7248d")."""
    placement: str
    """The expert placement of the run, as flags ("" for the defaults; e.g. "-ncmoe 24 --moe-hot-mib 2048")."""
    test: str
    """"pp512", "tg128", ..."""
    median_ts: float
    """Median over runs of each run's mean tokens/s."""
    min_ts: float
    max_ts: float
    runs: int


def bench_records(text: str) -> list[dict]:
    """llama-bench `-o json` (one array) or `-o jsonl` records (several runs may be appended), amid other log lines."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return [json.loads(line) for line in text.splitlines() if line.startswith("{") and line.rstrip().endswith("}")]


def test_name(record: dict) -> str:
    if record["n_gen"] == 0:
        return f"pp{record['n_prompt']}"
    if record["n_prompt"] == 0:
        return f"tg{record['n_gen']}"
    return f"pp{record['n_prompt']}+tg{record['n_gen']}"


def placement(record: dict) -> str:
    """The flags that placed the experts: `-ncmoe N` and the fork's `--moe-hot-mib M`, where not the defaults."""
    flags = [f"-ncmoe {record['n_cpu_moe']}"] if record.get("n_cpu_moe") else []
    flags += [f"--moe-hot-mib {record['moe_hot_mib']}"] if record.get("moe_hot_mib") else []
    return " ".join(flags)


def summarize(records: list[dict]) -> list[BenchSummary]:
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in records:
        groups.setdefault((r["build_commit"], placement(r), test_name(r)), []).append(r["avg_ts"])
    return [
        BenchSummary(build, where, test, statistics.median(ts), min(ts), max(ts), len(ts))
        for (build, where, test), ts in sorted(groups.items())
    ]


def ratios(summaries: list[BenchSummary], baseline: str) -> dict[str, dict[str, float]]:
    """For each non-baseline build and each placement and test the baseline ran: its median ÷ the baseline's."""
    base = {(s.placement, s.test): s.median_ts for s in summaries if s.build == baseline}
    out: dict[str, dict[str, float]] = {}
    for s in summaries:
        if s.build != baseline and (s.placement, s.test) in base:
            key = f"{s.placement} {s.test}".strip()
            out.setdefault(s.build, {})[key] = s.median_ts / base[(s.placement, s.test)]
    return out
