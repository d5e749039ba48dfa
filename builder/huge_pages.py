"""Run a command and watch how much of its memory the kernel gave huge pages.

A benchmark that compares host memory in transparent huge pages with 4 KiB pages (patch 0031,
GGML_CUDA_NO_HUGE_PAGES=1) says nothing unless the pages were huge: with THP off, or no free 2 MiB
pages left to compact, madvise(MADV_HUGEPAGE) is a no-op and both runs read 4 KiB pages. So the
run records the most AnonHugePages that /proc/PID/smaps_rollup showed while it ran.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.2
"""How often the process's huge pages are read; a run shorter than this is read once, at its start."""

THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@dataclass
class Finished:
    output: str
    """stdout then stderr"""
    rc: int | str
    """the exit status, or "timeout" where the command ran past its limit and was killed"""
    anon_huge_mib: float | None
    """the most AnonHugePages seen in the process, MiB; None where /proc could not be read (not Linux)"""


def thp_mode(path: Path = THP_ENABLED) -> str | None:
    """The kernel's transparent huge page mode (always, madvise or never), None where it has none."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else None


def anon_huge_kib(pid: int) -> int | None:
    """The AnonHugePages of process `pid` in KiB, None where it cannot be read (gone, or no /proc)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> Finished:
    """Run `cmd` to its end or `timeout` seconds (then kill it), reading its huge pages every POLL_SECONDS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        deadline = time.monotonic() + timeout
        most: int | None = None
        rc: int | str | None = None
        while rc is None:
            seen = anon_huge_kib(proc.pid)
            if seen is not None:
                most = max(most or 0, seen)
            try:
                rc = proc.wait(POLL_SECONDS)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    rc = "timeout"
        out.seek(0)
        err.seek(0)
        return Finished(out.read() + err.read(), rc, None if most is None else round(most / 1024, 1))
