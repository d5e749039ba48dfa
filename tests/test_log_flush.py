"""Patch 0039 (fork and baseline): a tool's last lines reach the reader of its output even when the log's thread is behind
at exit. At the pin, the logger is left to die with its queue (llama.cpp #22142): a tool whose reader is late loses its
results. The reader here is late and slow on purpose (a pipe of one page, read from 3 s after the start at 25 KB/s), so the
program ends while its log's thread still waits to write."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

WAIT_S = 3.0
READ_BYTES = 256
READ_PAUSE_S = 0.01
PIPE_BYTES = 4096
LAST_LINES = ("Final estimate: PPL = ", "llama_perf_context_print:    graphs reused =")


def read_late(binary: Path, model: Path, text: Path) -> tuple[int, str]:
    """llama-perplexity's output through a one-page pipe, read from WAIT_S seconds after the start (it has then exited, or
    it waits for the pipe), slowly: READ_BYTES every READ_PAUSE_S, so that its log's thread stays behind to the end."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    command = [binary, "-m", model, "-f", text, "-c", "64", "--chunks", "2", "-t", "2", "-lv", "4", "--cpu-moe"]
    proc = subprocess.Popen(command, stdout=write_end, stderr=write_end, stdin=subprocess.DEVNULL)
    os.close(write_end)
    time.sleep(WAIT_S)
    output = b""
    while chunk := os.read(read_end, READ_BYTES):
        output += chunk
        time.sleep(READ_PAUSE_S)
    os.close(read_end)
    return proc.wait(timeout=300), output.decode(errors="replace")


@pytest.mark.parametrize("variant", ["cpu", "baseline-cpu"])
def test_the_last_lines_reach_a_late_reader(cpu_builds, tiny_moe, story, variant):
    rc, output = read_late(cpu_builds / variant / "bin" / "llama-perplexity", tiny_moe, story)
    assert rc == 0
    for line in LAST_LINES:
        assert line in output, output[-2000:]


def test_upstream_loses_them(cpu_builds, tiny_moe, story):
    # the setup's proof: without the patch the same late reader gets only what the pipe held
    rc, output = read_late(cpu_builds / "upstream-cpu" / "bin" / "llama-perplexity", tiny_moe, story)
    assert rc == 0
    assert not any(line in output for line in LAST_LINES)
