"""Patch 0039 (fork and baseline): a tool's last lines reach the reader of its output even when the log's thread is behind
at exit. At the pin, the logger is left to die with its queue (llama.cpp #22142): a tool whose reader is late loses its
results. The reader here is late and slow on purpose: the tool writes into a pipe of one page, which is read only once the
tool has ended or sits idle (a patched tool waits at exit for its log's thread, which waits for the pipe; any tool waits
when its log's queue is full), then at 25 KB/s, so that a tool that goes on ends while its log's thread is still behind."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PIPE_BYTES = 4096
IDLE_S = 0.5
"""How long a tool must use no CPU time to count as waiting."""
LIMIT_S = 120
READ_BYTES = 256
READ_PAUSE_S = 0.01
LAST_LINES = ("Final estimate: PPL = ", "llama_perf_context_print:    graphs reused =")


def cpu_ticks(pid: int) -> int:
    """The CPU time the process and its threads have used so far (utime + stime of /proc/PID/stat), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_until_ended_or_idle(proc: subprocess.Popen) -> None:
    last, since = -1, time.monotonic()
    deadline = since + LIMIT_S
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            ticks = cpu_ticks(proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            return  # it ended between poll and read
        if ticks != last:
            last, since = ticks, time.monotonic()
        elif time.monotonic() - since >= IDLE_S:
            return
        time.sleep(0.05)


def read_late(binary: Path, model: Path, text: Path) -> tuple[int, str]:
    """llama-perplexity's output through a one-page pipe, read once the tool has ended or waits, READ_BYTES every
    READ_PAUSE_S."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    command = [binary, "-m", model, "-f", text, "-c", "64", "--chunks", "2", "-t", "2", "-lv", "4", "--cpu-moe"]
    proc = subprocess.Popen(command, stdout=write_end, stderr=write_end, stdin=subprocess.DEVNULL)
    os.close(write_end)
    wait_until_ended_or_idle(proc)
    output = b""
    while chunk := os.read(read_end, READ_BYTES):
        output += chunk
        time.sleep(READ_PAUSE_S)
    os.close(read_end)
    return proc.wait(timeout=LIMIT_S), output.decode(errors="replace")


@pytest.mark.parametrize("variant", ["cpu", "baseline-cpu"])
def test_the_last_lines_reach_a_late_reader(cpu_builds, tiny_moe, story, variant):
    rc, output = read_late(cpu_builds / variant / "bin" / "llama-perplexity", tiny_moe, story)
    assert rc == 0
    for line in LAST_LINES:
        assert line in output, output[-2000:]


def test_upstream_loses_them(cpu_builds, tiny_moe, story):
    # the setup's proof: without the patch the same reader misses the last lines. On a loaded machine a tool can look idle
    # while it waits for a core and then end after its log's thread caught up, so one try of three must show the loss
    outputs = []
    for _ in range(3):
        rc, output = read_late(cpu_builds / "upstream-cpu" / "bin" / "llama-perplexity", tiny_moe, story)
        assert rc == 0
        outputs.append(output)
        if not any(line in output for line in LAST_LINES):
            return
    pytest.fail(f"upstream printed its last lines to a late reader in 3 tries: {outputs[-1][-500:]}")
