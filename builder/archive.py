"""Unpacking source archives without trusting them, and packing a verified tree for a machine without network."""

from __future__ import annotations

import lzma
import os
import posixpath
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from .errors import FetchError


READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)
"""What reading a damaged .tar.gz or .tar.xz raises."""


def _inside(root: str, rel: str) -> str | None:
    """`rel` relative to `root`, or None when it lies outside it."""
    if not root:
        return rel
    if rel == root:
        return ""
    if rel.startswith(root + "/"):
        return rel[len(root) + 1 :]
    return None


def _check_member(member: tarfile.TarInfo, archive: Path) -> str:
    """The member's normalised name; refuses what could escape or harm the tree."""
    name = member.name
    norm = posixpath.normpath(name)
    if name.startswith("/") or ".." in name.split("/"):
        raise FetchError(f"{archive.name}: member {name!r} points outside the archive", "the archive is unsafe; do not use it")
    if member.isdev():
        kind = "FIFO" if member.isfifo() else "device file"
        raise FetchError(f"{archive.name}: member {name!r} is a {kind}", "the archive is unsafe; do not use it")
    if member.issym() or member.islnk():
        target = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(norm), target) if member.issym() else target)
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise FetchError(
                f"{archive.name}: link {name!r} -> {target!r} leaves the tree", "the archive is unsafe; do not use it"
            )
    return "" if norm == "." else norm


def extract_tree(archive: Path, root: str, dest: Path) -> None:
    """Extract the folder `root` of `archive` (all of it when "") into the new folder `dest`."""
    root = root.strip("/")
    try:
        with tarfile.open(archive) as tar:
            members = []
            files = set()  # a hard link names an earlier file of the tree
            for member in tar:
                rel = _inside(root, _check_member(member, archive))
                if rel:
                    if member.islnk():
                        target = _inside(root, posixpath.normpath(member.linkname))
                        if target not in files:
                            raise FetchError(f"{archive.name}: hard link {member.name!r} -> {member.linkname!r} names no file of the tree",
                                             "the archive is unsafe or broken; do not use it")
                        member.linkname = target
                    member.name = rel
                    members.append(member)
                    if member.isfile() or member.islnk():
                        files.add(rel)
            if not members:
                raise FetchError(f"{archive.name} has no folder {root!r}", "check the source's root in the pin")
            dest.mkdir(parents=True)
            tar.extractall(dest, members=members, filter="data")
    except READ_ERRORS as exc:
        if isinstance(exc, tarfile.FilterError):
            raise FetchError(f"{archive.name}: unsafe member: {exc}", "the archive is unsafe; do not use it") from exc
        raise FetchError(
            f"{archive.name} is truncated or corrupt ({exc.__class__.__name__}: {exc})",
            f"delete {archive} and fetch again",
        ) from exc


def write_tree_archive(tree: Path, files: Iterable[str], dest: Path) -> None:
    """`files` (paths relative to `tree`) as an xz-compressed tar at `dest`, under the folder `tree.name`; written to a
    temporary name first, so an interrupted write leaves no archive."""
    part = dest.with_name(dest.name + ".part")
    with tarfile.open(part, "w:xz", preset=6) as tar:
        for rel in sorted(files):
            tar.add(tree / rel, arcname=f"{tree.name}/{rel}", recursive=False)
    os.replace(part, dest)
