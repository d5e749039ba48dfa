"""Which kernels of a CUDA source read memory through generic loads: PTX `ld` without a state space.

A kernel that reads through a pointer the compiler cannot place in one memory (global memory in some blocks, shared
memory in others) gets generic loads. In the hot mat-vec (0049 as first built) they halved the speed of its reads of
mapped host memory on an H100 (reports/2026-12-06-stage-cold-rows-a-b), and nothing but the PTX or the SASS shows
them: the answers are the same."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from .errors import BuildError

STATE_SPACES = ("global", "shared", "param", "local", "const")
ENTRY = re.compile(r"^(?:\.visible\s+|\.weak\s+)?\.entry\s+(\S+?)\s*\(", re.M)
LOAD = re.compile(r"^\s*(?:@!?%\w+\s+)?(ld(?:\.[\w:]+)+)\s", re.M)


def is_generic(opcode: str) -> bool:
    """Whether a PTX load names no state space (`ld.u32`, `ld.volatile.v4.u32`; not `ld.global.nc.u32`, `ld.shared::cta.u32`)."""
    return not any(part.split("::")[0] in STATE_SPACES for part in opcode.split(".")[1:])


def kernels_with_generic_loads(ptx: str) -> list[str]:
    """The (mangled) names of the kernels in `ptx` with at least one generic load, in their order there."""
    entries = list(ENTRY.finditer(ptx))
    found = []
    for i, entry in enumerate(entries):
        body = ptx[entry.end():entries[i + 1].start() if i + 1 < len(entries) else len(ptx)]
        if any(is_generic(m.group(1)) for m in LOAD.finditer(body)):
            found.append(entry.group(1))
    return found


def kernel_names(ptx: str) -> list[str]:
    return [m.group(1) for m in ENTRY.finditer(ptx)]


def source_ptx(build_dir: Path, source: str, out: Path) -> str:
    """The PTX of `source` (a path ending, e.g. ggml/src/ggml-cuda/mmvq.cu) as the configured build folder compiles it
    (its compile_commands.json: the same flags and archs), written to `out` and returned."""
    commands = json.loads((build_dir / "compile_commands.json").read_text())
    entries = [e for e in commands if e["file"].endswith("/" + source)]
    if len(entries) != 1:
        raise BuildError(f"{build_dir / 'compile_commands.json'} has {len(entries)} entries for {source}",
                         "configure the build with -DCMAKE_EXPORT_COMPILE_COMMANDS=ON and name one CUDA source")
    args = shlex.split(entries[0]["command"])
    keep, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-o", "-c"):
            skip = arg == "-o"
        else:
            keep.append(arg)
    proc = subprocess.run([*keep, "--ptx", "-o", str(out)], cwd=entries[0]["directory"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"nvcc --ptx of {source} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}",
                         "fix the source or the toolkit; the same line compiles the object in the build")
    return out.read_text()
