"""Settings shared by the sub-commands, filled from the command line, then the environment, then defaults."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .pin import DEFAULT_PIN

CACHE_ENV = "EXPERTS_FIRST_CACHE"
INDEX_ENV = "EXPERTS_FIRST_INDEX_URL"


@dataclass(frozen=True)
class Settings:
    pin_path: Path
    """The pin file (`--pin`)."""
    cache_dir: Path
    """Downloads, fetched trees and build folders (`--cache-dir`, $EXPERTS_FIRST_CACHE, else the user cache dir)."""
    index_url: str | None
    """Package index for "index" sources (`--index-url`, $EXPERTS_FIRST_INDEX_URL, else pip's configured index, else the index client's default)."""
    local_source: Path | None
    """A local llama.cpp folder or archive to use instead of the pin's sources (`--source`)."""
    only_source: str | None
    """Try only the pin's source of this name (`--from`)."""
    verify: bool
    """Check hashes and the tree digest (`--no-verify` turns it off, loudly)."""


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of every sub-command that needs the pinned tree."""
    g = parser.add_argument_group("source")
    g.add_argument("--pin", type=Path, default=DEFAULT_PIN, help="pin file (default: %(default)s)")
    g.add_argument("--cache-dir", type=Path, help=f"cache folder (default: ${CACHE_ENV} or the user cache dir)")
    g.add_argument("--index-url", help=f"package index for the package-index source (default: ${INDEX_ENV}, else pip's configured index)")
    g.add_argument("--source", type=Path, metavar="PATH", help="use this local llama.cpp folder or archive instead of downloading")
    g.add_argument("--from", dest="only_source", metavar="NAME", help="try only the pin's source NAME (e.g. github, package-index)")
    g.add_argument("--no-verify", action="store_true", help="skip hash checks (unsafe; recorded in the build manifest)")


def _pip_index_url() -> str | None:
    """The index-url pip is configured with, if any (environment first, then config files)."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.rpartition(".")
        if name == "index-url":
            found[section] = value.strip().strip("'\"")
    for section in (":env:", "site", "user", "global"):
        if section in found:
            return found[section]
    return None


def settings_from_args(args: argparse.Namespace) -> Settings:
    cache_dir = args.cache_dir or (Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else None)
    return Settings(
        pin_path=args.pin,
        cache_dir=(cache_dir or Path(platformdirs.user_cache_dir("experts-first"))).resolve(),
        index_url=args.index_url or os.environ.get(INDEX_ENV) or None,
        local_source=args.source.resolve() if args.source else None,
        only_source=args.only_source,
        verify=not args.no_verify,
    )


def resolve_index_url(settings: Settings) -> str | None:
    """The index to ask, looked up only when an index source is actually tried."""
    return settings.index_url or _pip_index_url()
