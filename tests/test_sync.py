"""sync_tree rewrites only changed files, so ninja recompiles only what changed."""

from __future__ import annotations

import os
from pathlib import Path

from builder.sync import sync_tree


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


BASE_FILES = ["a.c", "b.c", "gone.c"]


def test_sync_writes_only_what_differs(tmp_path):
    base = _tree(tmp_path / "base", {"a.c": "a", "b.c": "b", "gone.c": "g"})
    overlay = _tree(tmp_path / "overlay", {"b.c": "patched b", "new.h": "n"})
    dest = tmp_path / "dest"
    assert sync_tree(base, BASE_FILES, overlay, ["b.c", "new.h", "gone.c"], dest) == 3
    assert sorted(p.name for p in dest.iterdir()) == ["a.c", "b.c", "new.h"]
    assert (dest / "b.c").read_text() == "patched b"
    old = 1_000_000_000
    for p in dest.iterdir():
        os.utime(p, (old, old))
    # same wanted content: nothing is touched
    assert sync_tree(base, BASE_FILES, overlay, ["b.c", "new.h", "gone.c"], dest) == 0
    assert all(p.stat().st_mtime == old for p in dest.iterdir())
    # the patch is dropped: b.c returns to base, new.h goes, a.c keeps its time
    assert sync_tree(base, BASE_FILES, overlay, [], dest) == 3
    assert (dest / "b.c").read_text() == "b" and not (dest / "new.h").exists()
    assert (dest / "a.c").stat().st_mtime == old


def test_sync_copies_only_the_listed_files_and_removes_the_rest(tmp_path):
    base = _tree(tmp_path / "base", {"a.c": "a", "app/CMakeLists.txt": "not listed", ".git/HEAD": "ref"})
    dest = _tree(tmp_path / "dest", {"old/left.c": "from an older tree"})
    assert sync_tree(base, ["a.c"], tmp_path / "overlay", [], dest) == 2
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == ["a.c"]
