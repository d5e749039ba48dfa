"""Keeping a build's source folder equal to the wanted tree while touching only what changed.

Ninja rebuilds by modification time, so files whose content did not change keep theirs.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path
from typing import Iterable


def _files(root: Path) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in filenames + links:
            found.add((Path(dirpath) / name).relative_to(root).as_posix())
    return found


def sync_tree(base: Path, base_files: Iterable[str], overlay: Path, touched: list[str], dest: Path) -> int:
    """Make `dest` hold exactly the `base_files` of `base`, with the `touched` paths taken from `overlay`.

    Files of `base` that are not listed are never copied, and anything else in `dest` is removed (a
    source's `.git/`, folders of an older tree). A touched path missing from `overlay` was deleted.
    Returns how many files were written or removed.
    """
    wanted: dict[str, Path] = {rel: base / rel for rel in base_files}
    for rel in touched:
        if (overlay / rel).exists():
            wanted[rel] = overlay / rel
        else:
            wanted.pop(rel, None)
    dest.mkdir(parents=True, exist_ok=True)
    changes = 0
    for rel in _files(dest) - set(wanted):
        (dest / rel).unlink()
        changes += 1
    for rel, origin in sorted(wanted.items()):
        target = dest / rel
        if origin.is_symlink():
            if target.is_symlink() and os.readlink(target) == os.readlink(origin):
                continue
            target.unlink(missing_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(origin), target)
        elif target.is_file() and not target.is_symlink() and filecmp.cmp(origin, target, shallow=False):
            continue
        else:
            target.unlink(missing_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, target)
            shutil.copymode(origin, target)
        changes += 1
    return changes
