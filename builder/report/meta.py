"""The meta.json of a placements run (scripts/bench-placements.py): the settings and, per routing, what its traces give."""

from __future__ import annotations


def merge_meta(into: dict, meta: dict, where: str, path: str = "meta.json") -> None:
    """Joins one stage's meta.json into another's: dictionaries key by key, any other value must be equal."""
    for key, value in meta.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, dict):
            merge_meta(into[key], value, where, f"{path} {key}")
        elif into[key] != value:
            raise ValueError(f"{where}: {path} {key} is {value!r}, the stages before have {into[key]!r}: "
                             "merge only runs of the same model and settings")
