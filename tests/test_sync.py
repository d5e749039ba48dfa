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


def test_sync_writes_only_what_differs(tmp_path):
    base = _tree(tmp_path / "base", {"a.c": "a", "b.c": "b", "gone.c": "g"})
    overlay = _tree(tmp_path / "overlay", {"b.c": "patched b", "new.h": "n"})
    dest = tmp_path / "dest"
    assert sync_tree(base, overlay, ["b.c", "new.h", "gone.c"], dest) == 3
    assert sorted(p.name for p in dest.iterdir()) == ["a.c", "b.c", "new.h"]
    assert (dest / "b.c").read_text() == "patched b"
    old = 1_000_000_000
    for p in dest.iterdir():
        os.utime(p, (old, old))
    # same wanted content: nothing is touched
    assert sync_tree(base, overlay, ["b.c", "new.h", "gone.c"], dest) == 0
    assert all(p.stat().st_mtime == old for p in dest.iterdir())
    # the patch is dropped: b.c returns to base, new.h goes, a.c keeps its time
    assert sync_tree(base, overlay, [], dest) == 3
    assert (dest / "b.c").read_text() == "b" and not (dest / "new.h").exists()
    assert (dest / "a.c").stat().st_mtime == old
