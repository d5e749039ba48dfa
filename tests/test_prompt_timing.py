"""bench-placements.py --ubatch 512 against llama-perplexity's own timing of prompt passes, in the CPU build.

llama-perplexity counts its first pass in the prompt-eval line but does not time it (bench-placements.py's
PROMPT_PASS_TOKENS says why). Here at -c 64 -b 64, where a pass is 64 tokens: if libllama ever times the first pass,
the first test fails, and the correction must go.
"""

from __future__ import annotations

import re
import subprocess
import sys

import llama_tools
import pytest
from llama_tools import SCRIPTS, load_script

pytestmark = pytest.mark.slow

PASS = 64  # -c 64 -b 64 -ub 64: one ubatch a pass
PROMPT = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def prompt_passes(cpu_builds, tiny_moe, story, chunks: int) -> str:
    proc = llama_tools.perplexity(cpu_builds, tiny_moe, story, "-b", str(PASS), "-ub", str(PASS), "--perf", "--chunks", str(chunks))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_the_first_pass_is_counted_but_not_timed(cpu_builds, tiny_moe, story):
    (one_ms, one_n), = ((float(ms), int(n)) for ms, n in PROMPT.findall(prompt_passes(cpu_builds, tiny_moe, story, 1)))
    (two_ms, two_n), = ((float(ms), int(n)) for ms, n in PROMPT.findall(prompt_passes(cpu_builds, tiny_moe, story, 2)))
    assert (one_n, two_n) == (PASS, 2 * PASS)
    # one pass timed of two: the single chunk's line times (almost) nothing
    assert one_ms < 0.2 * two_ms


def test_prompt_processing_rates_count_only_the_timed_passes(cpu_builds, tiny_moe, story):
    bench = load_script("bench-placements")
    text = prompt_passes(cpu_builds, tiny_moe, story, 2)
    (ms, _), = PROMPT.findall(text)
    parsed = bench.parse_run(text, untimed_tokens=PASS)
    assert parsed["tokens"] == PASS
    assert parsed["tokens_per_s"] == round(1000.0 * PASS / float(ms), 2)
    assert bench.parse_run(prompt_passes(cpu_builds, tiny_moe, story, 1), untimed_tokens=PASS)["tokens_per_s"] is None


def test_prompt_processing_of_a_single_chunk_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPTS / "bench-placements.py", "--model", tmp_path / "none.gguf", "--text",
                           tmp_path / "none.txt", "--route", "x=a.bin", "--ubatch", "512", "--chunks", "1", "--out", tmp_path / "out"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "--chunks 2 or more" in proc.stderr
    assert not (tmp_path / "out").exists()
