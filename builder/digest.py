"""Content digests of files and of source trees."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Mapping

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tree_files(root: Path, paths: Iterable[str]) -> list[str]:
    """Relative paths of the files and symbolic links under `paths` of `root`, sorted; links are not followed."""
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


def missing_paths(root: Path, paths: Iterable[str]) -> list[str]:
    return [rel for rel in paths if not (root / rel).exists() and not (root / rel).is_symlink()]


def file_hashes(root: Path, paths: Iterable[str]) -> dict[str, str]:
    """Each file under `paths` of `root` and its content: its sha256, or "link:<target>" for a symbolic link."""
    hashes = {}
    for rel in tree_files(root, paths):
        path = root / rel
        hashes[rel] = f"link:{os.readlink(path)}" if path.is_symlink() else file_sha256(path)
    return hashes


def digest_of(hashes: Mapping[str, str], missing: Iterable[str] = ()) -> str:
    """"sha256:<hex>" over the listed paths that are missing, then each file's relative path and content."""
    outer = hashlib.sha256()
    for rel in missing:
        outer.update(f"missing\0{rel}\n".encode())
    for rel in sorted(hashes):
        outer.update(f"{rel}\0{hashes[rel]}\n".encode())
    return f"sha256:{outer.hexdigest()}"


def tree_digest(root: Path, paths: Iterable[str]) -> str:
    """"sha256:<hex>" over every file under `paths` of `root`: relative path and content.

    Symbolic links count by their target text. File modes and times do not count,
    so an archive and a checkout of the same tree give the same digest. A listed
    path that is missing counts as missing, so it changes the digest too.
    """
    paths = list(paths)
    return digest_of(file_hashes(root, paths), missing_paths(root, paths))
