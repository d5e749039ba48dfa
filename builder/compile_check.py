"""Which of the CUDA backend's object files `build --compile-only-touched` compiles.

First the objects whose source the series touches, then those whose source directly includes a
header the series touches, smallest source first and at most `max_includers` of them. Headers
included only through other headers are not followed, and the rest are left out (and named):
compiling every object is the whole CUDA build, 30-40 minutes on 2 cores.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

CUDA_OBJECTS = "/CMakeFiles/ggml-cuda.dir/"  # the CUDA backend target's object folder
HEADER_SUFFIXES = (".h", ".hpp", ".cuh")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.M)
MAX_INCLUDERS = 8


@dataclass(frozen=True, order=True)
class ObjectFile:
    source: str
    """Its source file, relative to the source tree."""
    target: str
    """Its ninja target: the object file, relative to the build folder."""


@dataclass
class Selection:
    touched: list[ObjectFile] = field(default_factory=list)
    """Objects whose source the series touches."""
    includers: list[ObjectFile] = field(default_factory=list)
    """Objects whose source directly includes a touched header, within the bound."""
    left_out: list[ObjectFile] = field(default_factory=list)
    """Includers beyond the bound."""

    @property
    def targets(self) -> list[str]:
        return [o.target for o in self.touched + self.includers]


def cuda_objects(build_dir: Path, src: Path) -> list[ObjectFile]:
    """The CUDA backend's objects, from the compile_commands.json of a configured build folder."""
    entries = json.loads((build_dir / "compile_commands.json").read_text())

    def below(path: str, directory: str, root: Path) -> str:
        return (Path(directory) / path).resolve().relative_to(root.resolve()).as_posix()

    return sorted({ObjectFile(below(e["file"], e["directory"], src), below(e["output"], e["directory"], build_dir))
                   for e in entries if CUDA_OBJECTS in f"/{e['output']}"})


def includes(source: Path, header: str, src: Path) -> bool:
    """Whether `source` has an #include line naming the tree's `header` (a path relative to `src`):
    relative to the source's folder, or else as the tail of the header's path (include folders)."""
    wanted = (src / header).resolve()
    for name in INCLUDE_RE.findall(source.read_text(encoding="utf-8", errors="replace")):
        beside = source.parent / name
        if beside.resolve() == wanted or (not beside.exists() and f"/{header}".endswith(f"/{name}")):
            return True
    return False


def select_objects(objects: list[ObjectFile], touched: list[str], src: Path, max_includers: int) -> Selection:
    sources = {o.source for o in objects}
    headers = [f for f in touched if f.endswith(HEADER_SUFFIXES) and f not in sources]
    selection = Selection(touched=[o for o in objects if o.source in touched])
    includers = [o for o in objects if o not in selection.touched and any(includes(src / o.source, h, src) for h in headers)]
    includers.sort(key=lambda o: ((src / o.source).stat().st_size, o.source))
    selection.includers, selection.left_out = includers[:max_includers], includers[max_includers:]
    return selection
