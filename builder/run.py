"""The one way this package runs external commands."""

from __future__ import annotations

import collections
import os
import shlex
import subprocess
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .errors import CommandError

TAIL_LINES = 30


def format_command(cmd: Sequence[str | os.PathLike]) -> str:
    return shlex.join(str(c) for c in cmd)


def run(
    cmd: Sequence[str | os.PathLike],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log_file: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    error: type[CommandError] | Callable[..., Exception] = CommandError,
    hint: str = "",
) -> str:
    """Run `cmd`, returning its combined stdout and stderr.

    Output goes line by line to `log_file` (appended) and `on_line`. `env` holds
    only the variables to change; they are logged with the command. On a non-zero
    exit, raises `error` with the command, the exit code, the output's tail and
    the log's path.
    """
    changed = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    shown = f"{changed} {format_command(cmd)}".strip()
    full_env = {**os.environ, **(env or {})}
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    lines: list[str] = []
    sink = open(log_file, "a", encoding="utf-8") if log_file else None
    try:
        if sink:
            sink.write(f"$ {shown}\n")
            sink.flush()
        try:
            proc = subprocess.Popen(
                [str(c) for c in cmd],
                cwd=cwd,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
            )
        except FileNotFoundError as exc:
            raise error(f"cannot run {cmd[0]}: not found", hint or "install it or put it on PATH") from exc
        with proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                tail.append(line.rstrip("\n"))
                if sink:
                    sink.write(line)
                if on_line:
                    on_line(line.rstrip("\n"))
            code = proc.wait()
    finally:
        if sink:
            sink.close()
    if code != 0:
        where = f"\nfull log: {log_file}" if log_file else ""
        last = "\n".join(f"  | {t}" for t in tail)
        raise error(f"command failed (exit {code}): {shown}\n{last}{where}", hint)
    return "".join(lines)
