"""Content digests of files and of source trees."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _tree_files(root: Path, paths: Iterable[str]) -> list[str]:
    found = []
    for rel in paths:
        top = root / rel
        if top.is_symlink() or top.is_file():
            found.append(rel)
            continue
        for dirpath, dirnames, filenames in os.walk(top):  # does not follow links
            links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
            for name in filenames + links:
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(set(found))


def tree_digest(root: Path, paths: Iterable[str]) -> str:
    """"sha256:<hex>" over every file under `paths` of `root`: relative path and content.

    Symbolic links count by their target text. File modes and times do not count,
    so an archive and a checkout of the same tree give the same digest. A listed
    path that is missing counts as missing, so it changes the digest too.
    """
    outer = hashlib.sha256()
    for rel in paths:
        if not (root / rel).exists() and not (root / rel).is_symlink():
            outer.update(f"missing\0{rel}\n".encode())
    for rel in _tree_files(root, paths):
        path = root / rel
        content = f"link:{os.readlink(path)}" if path.is_symlink() else file_sha256(path)
        outer.update(f"{rel}\0{content}\n".encode())
    return f"sha256:{outer.hexdigest()}"
