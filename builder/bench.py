"""Summaries of llama-bench results: medians per variant and test, and fork ÷ baseline ratios."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSummary:
    build: str
    """llama-bench's build_commit: which variant ran (e.g. "upstream", "experts-first-0.1.0+f9f7248d")."""
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


def summarize(records: list[dict]) -> list[BenchSummary]:
    groups: dict[tuple[str, str], list[float]] = {}
    for r in records:
        groups.setdefault((r["build_commit"], test_name(r)), []).append(r["avg_ts"])
    return [
        BenchSummary(build, test, statistics.median(ts), min(ts), max(ts), len(ts))
        for (build, test), ts in sorted(groups.items())
    ]


def ratios(summaries: list[BenchSummary], baseline: str) -> dict[str, dict[str, float]]:
    """For each non-baseline build and test: its median ÷ the baseline's median."""
    base = {s.test: s.median_ts for s in summaries if s.build == baseline}
    out: dict[str, dict[str, float]] = {}
    for s in summaries:
        if s.build != baseline and s.test in base:
            out.setdefault(s.build, {})[s.test] = s.median_ts / base[s.test]
    return out
