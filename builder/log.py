"""Progress output: steps, sub-steps, byte counters and GitHub Actions groups.

Everything goes to stderr so that `--json` output on stdout stays machine-readable.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterator

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def _on_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def info(message: str) -> None:
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def step(message: str) -> None:
    info(f"* {message}")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    """A titled block that reports its elapsed time; folded on GitHub Actions."""
    if _on_actions():
        print(f"::group::{title}", file=sys.stderr, flush=True)
    else:
        step(title)
    start = time.monotonic()
    try:
        yield
    finally:
        if _on_actions():
            print("::endgroup::", file=sys.stderr, flush=True)
        info(f"  {title}: {time.monotonic() - start:.1f} s")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """A one-line counter that redraws on a terminal and prints every 10% elsewhere."""

    def __init__(self, label: str, total: int | None, unit: str = "bytes") -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.detail = ""
        self._tty = sys.stderr.isatty()
        self._last_decile = -1
        self._last_draw = 0.0

    def _format(self, n: int) -> str:
        return human_bytes(n) if self.unit == "bytes" else str(n)

    def _line(self) -> str:
        if self.total and self.unit == "steps":
            return f"  {self.label} [{self.done}/{self.total}] {self.detail}"
        if self.total:
            pct = 100.0 * self.done / self.total
            return f"  {self.label}: {self._format(self.done)} / {self._format(self.total)} ({pct:.0f}%)"
        return f"  {self.label}: {self._format(self.done)}"

    def update(self, n: int) -> None:
        self.advance_to(self.done + n, self.total)

    def advance_to(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        if _quiet:
            return
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw > 0.2:
                self._last_draw = now
                print(f"\r{self._line()}", end="", file=sys.stderr, flush=True)
        elif self.total:
            decile = int(10 * self.done / self.total)
            if decile != self._last_decile:
                self._last_decile = decile
                info(self._line())

    def close(self) -> None:
        if _quiet:
            return
        if self._tty:
            print(f"\r{self._line()}", file=sys.stderr, flush=True)
        elif not self.total:
            info(self._line())
