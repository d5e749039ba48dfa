"""The pin: which upstream llama.cpp we build on, where to get it, and its hashes."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PIN = REPO_ROOT / "vendor" / "llama.cpp.toml"
SOURCE_KINDS = ("url", "index")


@dataclass(frozen=True)
class Source:
    """One place the pinned tree can come from, tried in the pin's order."""

    name: str
    """Short name used in messages and `--from`."""
    kind: str
    """"url": a plain archive URL; "index": a file of a project on the package index."""
    root: str
    """Folder inside the archive that holds the llama.cpp tree ("" for the top)."""
    url: str = ""
    """For "url" sources."""
    project: str = ""
    """For "index" sources: the project on the package index."""
    version: str = ""
    """For "index" sources: the project's release."""
    filename: str = ""
    """The archive's file name (derived from `url` when empty)."""
    sha256: str = ""
    """The archive's sha256, or "" where no fixed archive hash is known."""
    size: int = 0
    """The archive's size in bytes, 0 if unknown (only used for progress)."""

    @property
    def archive_name(self) -> str:
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Pin:
    """The parsed pin file."""

    path: Path
    project: str
    tag: str
    build_number: int
    tree_paths: tuple[str, ...]
    """Paths of the tree (files or folders) that the content digest covers."""
    tree_digest: str
    """"sha256:<hex>" over `tree_paths`, see `digest.tree_digest`."""
    sources: tuple[Source, ...]

    @property
    def label(self) -> str:
        return f"{self.project} {self.tag}"

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        names = ", ".join(s.name for s in self.sources)
        raise UsageError(f"the pin has no source named {name!r}", f"use one of: {names}")


def _require(table: dict, key: str, where: str, path: Path):
    if key not in table:
        raise UsageError(f"{path}: [{where}] lacks {key!r}", "see vendor/llama.cpp.toml for the format")
    return table[key]


def load_pin(path: Path = DEFAULT_PIN) -> Pin:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"pin file {path} does not exist", "pass --pin FILE or restore vendor/llama.cpp.toml") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"pin file {path} is not valid TOML: {exc}", "fix the syntax") from exc
    upstream = _require(data, "upstream", "upstream", path)
    tree = _require(data, "tree", "tree", path)
    sources = []
    for i, raw in enumerate(_require(data, "sources", "sources", path)):
        where = f"sources #{i + 1}"
        kind = _require(raw, "kind", where, path)
        if kind not in SOURCE_KINDS:
            raise UsageError(f"{path}: [{where}] has unknown kind {kind!r}", f"use one of: {', '.join(SOURCE_KINDS)}")
        for key in ("url",) if kind == "url" else ("project", "version", "filename"):
            _require(raw, key, where, path)
        try:
            sources.append(Source(**raw))
        except TypeError as exc:
            raise UsageError(f"{path}: [{where}]: {exc}", "see the Source fields in builder/pin.py") from exc
    return Pin(
        path=path,
        project=_require(upstream, "project", "upstream", path),
        tag=_require(upstream, "tag", "upstream", path),
        build_number=int(_require(upstream, "build_number", "upstream", path)),
        tree_paths=tuple(_require(tree, "paths", "tree", path)),
        tree_digest=_require(tree, "digest", "tree", path),
        sources=tuple(sources),
    )
