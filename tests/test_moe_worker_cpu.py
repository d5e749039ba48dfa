"""Patches 0028-0029, 0032 and 0041 in the CPU build: --moe-cold-worker's bad input is refused before anything loads, and
with the cold experts read in place by the CPU (LLAMA_MOE_COLD_IN_PLACE_CPU=1, 0026; otherwise --moe-cold gpu needs a CUDA
GPU) the worker computes its share of each token's cold experts and changes no answer; the tools start it by default
(auto) where it can serve; where the hot set adapts, layers leave and join it as their misses change (0041). Its speed is
measured on the GPU machine (scripts/bench-placements.py hot-gpu-worker*, adapt-gpu-worker*)."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_tools import final_ppl, perplexity

from builder.moe_trace import Trace, write_trace
from builder.report.parse import ParseError, parse_graphs_reused, parse_moe_adapt, parse_moe_worker, parse_moe_worker_follow

pytestmark = pytest.mark.slow

GPU = ("--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "gpu")
IN_PLACE = {"LLAMA_MOE_COLD_IN_PLACE_CPU": "1"}
OFF = ("--moe-cold-worker", "0")
"""Without the worker, which the tools start by default with --moe-cold gpu (0032)."""
ONE_PASS = ("-b", "4", "-ub", "4")
"""Steps of 4 tokens: the layers are read in one pass (0012), and the worker takes part (up to 4 tokens a step)."""

REQUIRES = ("the MoE cold expert worker (--moe-cold-worker) takes some of the cold experts that --moe-cold gpu reads in place; "
            "it requires hot experts (--moe-hot-mib) and --moe-cold gpu")


@pytest.mark.parametrize("args, message", [
    (("--cpu-moe", "--moe-hot-mib", "1", "--moe-cold-worker", "1"), REQUIRES),
    (("--cpu-moe", "--moe-cold", "gpu", "--moe-cold-worker", "1"), REQUIRES),
    (("--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "hybrid", "--moe-cold-worker", "1"), REQUIRES),
    (("--moe-cold-worker", "-1"), 'error while handling argument "--moe-cold-worker": must be auto or a number of threads from 0 to 1024'),
    (("--moe-cold-worker", "all"), 'error while handling argument "--moe-cold-worker": must be auto or a number of threads from 0 to 1024'),
    (("--moe-cold-worker", "8x"), 'error while handling argument "--moe-cold-worker": must be auto or a number of threads from 0 to 1024'),
])
def test_a_worker_without_what_it_needs_is_refused(cpu_builds, tiny_moe, story, args, message):
    proc = perplexity(cpu_builds, tiny_moe, story, *args, env=IN_PLACE)
    assert proc.returncode != 0
    assert message in proc.stderr


def worker_line(proc) -> tuple[int, int, int]:
    """The worker's threads, jobs and experts from its line at exit; (0, 0, 0) where it computed nothing."""
    try:
        work = parse_moe_worker(proc.stderr)
    except ParseError:
        return (0, 0, 0)
    return (work.threads, work.jobs, work.experts)


@pytest.fixture(scope="module")
def one_pass(cpu_builds, tiny_moe, story):
    """The layers read in one pass without the worker: every answer below must be this one."""
    return final_ppl(perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, *OFF, env=IN_PLACE))


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("share", ["0.5", "1"])
def test_the_worker_computes_its_share_and_changes_no_answer(cpu_builds, tiny_moe, story, one_pass, threads, share):
    # a worker whose sum is left out (tried: out = 0) changes the PPL in its fourth digit; a share of the cold experts that
    # neither side computes would as well, and so would a chunk of rows that no thread takes (tried: each chunk's last row
    # left out) or a piece of the input that no thread quantizes (tried: the first piece); 3 threads take them unevenly
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", threads, "--moe-cold-cpu-share", share,
                      env=IN_PLACE)
    assert final_ppl(proc) == one_pass
    assert (f"a CPU worker of {threads} threads computes {round(100 * float(share))}% of each token's cold experts in 2 of the "
            "2 split layers") in proc.stderr
    n_threads, n_jobs, n_experts = worker_line(proc)
    assert n_threads == int(threads) and n_jobs > 0 and n_experts >= n_jobs
    assert "llama_moe_worker: a job's phases (input / gate and up / their product / down), us: thread 0 worked" in proc.stderr
    # 0033: the backend's recv says how long it waited for each answer; the worker counts every job's
    work = parse_moe_worker(proc.stderr)
    assert work.recv_waited is not None and 0 <= work.recv_waited <= work.jobs and work.recv_wait_us_per_job >= 0


def test_the_backend_s_waits_for_the_worker_are_counted(cpu_builds, tiny_moe, story):
    # every cold expert on a worker of one thread, while the backend computes a few hot ones: it waits for most answers
    # (tried: recv writing no wait, and the worker not reading it: 0 of the jobs)
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1", "--moe-cold-cpu-share", "1", env=IN_PLACE)
    work = parse_moe_worker(proc.stderr)
    assert 0 < work.recv_waited <= work.jobs and work.recv_wait_us_per_job > 0
    assert (f"llama_moe_worker: the backend waited for the answer of {work.recv_waited} of {work.jobs} jobs "
            f"({100 * work.recv_waited / work.jobs:.1f}%)") in proc.stderr


def test_the_whole_share_takes_more_experts_than_half(cpu_builds, tiny_moe, story):
    # the plan's rounding: of m cold selections the worker takes round(m*share), so 1 takes every one, 0.5 about half
    def experts(share):
        proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1", "--moe-cold-cpu-share", share,
                          env=IN_PLACE)
        return worker_line(proc)[2]
    half, whole = experts("0.5"), experts("1")
    assert 0 < half < whole


def test_a_share_of_zero_hands_the_worker_nothing(cpu_builds, tiny_moe, story, one_pass):
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1", "--moe-cold-cpu-share", "0",
                      env=IN_PLACE)
    assert final_ppl(proc) == one_pass
    assert worker_line(proc) == (0, 0, 0)


@pytest.fixture(scope="module")
def profile(cpu_builds, tiny_moe, story, tmp_path_factory):
    """The story's own routing, as --moe-hot-profile reads it."""
    trace = tmp_path_factory.mktemp("profile") / "story.moetrace"
    final_ppl(perplexity(cpu_builds, tiny_moe, story, "--moe-trace-out", str(trace)))
    return trace


def test_layers_whose_profile_expects_few_cold_selections_do_without_the_worker(cpu_builds, tiny_moe, story, profile):
    hot = (*ONE_PASS, *GPU, "--moe-hot-profile", str(profile))
    without = final_ppl(perplexity(cpu_builds, tiny_moe, story, *hot, *OFF, env=IN_PLACE))
    # a threshold above the n_used selections a token can make: no layer expects that many cold ones
    proc = perplexity(cpu_builds, tiny_moe, story, *hot, "--moe-cold-worker", "1",
                      env={**IN_PLACE, "LLAMA_MOE_WORKER_MIN_COLD": "100"})
    assert final_ppl(proc) == without
    assert ("2 split layers do without the worker: they expect fewer than 100 cold selections a token (by the profile; "
            "LLAMA_MOE_WORKER_MIN_COLD)") in proc.stderr
    assert "no split layer expects cold selections enough, the worker is not started" in proc.stderr
    assert worker_line(proc) == (0, 0, 0)

    proc = perplexity(cpu_builds, tiny_moe, story, *hot, "--moe-cold-worker", "1", env={**IN_PLACE, "LLAMA_MOE_WORKER_MIN_COLD": "0"})
    assert final_ppl(proc) == without
    assert "in 2 of the 2 split layers" in proc.stderr and "do without the worker" not in proc.stderr
    assert worker_line(proc)[1] > 0


def crafted_profile(path: Path, outside: list[float], n_tokens: int = 1000) -> Path:
    """A profile of the tiny model (2 layers, 16 experts, 4 used) in which experts 0-3 make up each token's selections but one,
    which in layer il's first outside[il] of the tokens is expert 4 + t % 12: with 4 experts hot (1 MiB), layer il expects
    4 x outside[il] / 4 = outside[il] cold selections a token."""
    ids = np.tile(np.arange(4, dtype=np.int16), (n_tokens, len(outside), 1))
    for il, share in enumerate(outside):
        for t in range(round(share * n_tokens)):
            ids[t, il, 3] = 4 + t % 12
    write_trace(Trace(len(outside), 16, 4, ids), path)
    return path


def test_by_default_a_layer_keeps_the_worker_from_0_2_cold_selections_a_token(cpu_builds, tiny_moe, story, tmp_path):
    # 0054: 0.3 expected cold selections a token keep it (they did not at 0029's 0.5: the same run left both layers out),
    # 0.1 do not
    profile = crafted_profile(tmp_path / "profile.bin", [0.3, 0.1])
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-hot-profile", str(profile), "--moe-cold-worker", "1",
                      env=IN_PLACE)
    assert ("1 split layers do without the worker: they expect fewer than 0.2 cold selections a token (by the profile; "
            "LLAMA_MOE_WORKER_MIN_COLD)") in proc.stderr
    assert "in 1 of the 2 split layers" in proc.stderr
    assert worker_line(proc)[1] > 0


@pytest.mark.parametrize("min_cold, kept", [("2.9", True), ("3.1", False)])
def test_without_a_profile_a_layer_expects_every_expert_alike(cpu_builds, tiny_moe, story, min_cold, kept):
    # 4 of 16 experts hot, 4 used a token: 4 x 12/16 = 3 cold selections a token expected
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1",
                      env={**IN_PLACE, "LLAMA_MOE_WORKER_MIN_COLD": min_cold})
    assert ("in 2 of the 2 split layers" in proc.stderr) == kept
    assert (f"2 split layers do without the worker: they expect fewer than {min_cold} cold selections a token (every expert alike, "
            "without a profile; LLAMA_MOE_WORKER_MIN_COLD)" in proc.stderr) != kept
    assert (worker_line(proc)[1] > 0) == kept


def test_batches_above_four_tokens_do_without_the_worker(cpu_builds, tiny_moe, story):
    # without the warm-up run, whose one token would hand the worker its experts
    args = ("-b", "8", "-ub", "8", "--no-warmup", *GPU)
    proc = perplexity(cpu_builds, tiny_moe, story, *args, "--moe-cold-worker", "1", env=IN_PLACE)
    assert final_ppl(proc) == final_ppl(perplexity(cpu_builds, tiny_moe, story, *args, *OFF, env=IN_PLACE))
    assert worker_line(proc) == (0, 0, 0)


def test_the_adaptive_set_counts_the_worker_s_experts_too(cpu_builds, tiny_moe, story):
    # one-token steps, where a layer read in one pass counts its selections in its down experts' node (0022); the worker's
    # selections are -1 there, so its layers copy their selections instead: the same counts, swaps and answers (counting in
    # the node with the worker gave other swaps and another PPL)
    adapt = ("-b", "1", "-ub", "1", "--moe-hot-adapt", "4", "--moe-hot-adapt-noise", "0")
    without = perplexity(cpu_builds, tiny_moe, story, *GPU, *adapt, *OFF, env=IN_PLACE)
    proc = perplexity(cpu_builds, tiny_moe, story, *GPU, *adapt, "--moe-cold-worker", "1", env=IN_PLACE)
    assert final_ppl(proc) == final_ppl(without)
    swaps = [parse_moe_adapt(p.stderr).swaps for p in (proc, without)]
    assert swaps[0] == swaps[1] != 0
    assert worker_line(proc)[1] > 0


ADAPT_FAST = ("-b", "1", "-ub", "1", "--moe-hot-adapt", "4", "--moe-hot-adapt-noise", "0", "--moe-cold-worker", "1")
"""One-token steps, the hot set updated every 4 tokens, and a worker of one thread."""
FOLLOW = {"LLAMA_MOE_WORKER_FOLLOW": "1"}
"""The worker's layers follow the adaptive set (0041, off by default: the runs without it keep the load's choice)."""


def test_layers_whose_misses_the_adaptive_set_makes_rare_leave_the_worker(cpu_builds, tiny_moe, story):
    # 4 of 16 experts hot without a profile: 3 cold selections a token expected, above 2.9, so both layers start on the
    # worker; zipf routing lets the adaptive set hit ~80 %, below 2.9 cold selections a token, and both leave it
    args = (*GPU, *ADAPT_FAST, "--moe-route", "zipf:3")
    env = {**IN_PLACE, "LLAMA_MOE_WORKER_MIN_COLD": "2.9"}
    follow = perplexity(cpu_builds, tiny_moe, story, *args, env={**env, **FOLLOW})
    fixed = perplexity(cpu_builds, tiny_moe, story, *args, env=env)
    assert final_ppl(follow) == final_ppl(fixed)
    assert "in 2 of the 2 split layers" in follow.stderr
    moved = parse_moe_worker_follow(follow.stderr)
    assert (moved.layers_at_end, moved.layers) == (0, 2) and moved.changes >= 2
    with pytest.raises(ParseError):
        parse_moe_worker_follow(fixed.stderr)
    # a layer off the worker sends it nothing: the graphs that sent are built anew, not reused (tried: reused, 394 jobs)
    assert 0 < worker_line(follow)[1] < worker_line(fixed)[1] // 4
    assert parse_graphs_reused(follow.stderr) < parse_graphs_reused(fixed.stderr)


@pytest.mark.parametrize("min_cold, joined", [("1", True), ("2", False)])
def test_layers_whose_misses_stay_frequent_join_the_worker(cpu_builds, tiny_moe, story, tmp_path, min_cold, joined):
    # a profile of zipf routing expects few cold selections, so no layer starts on the worker; uniform routing keeps ~3 a
    # token: above twice the threshold of 1, and both layers join it, but not twice 2 (a layer joins at twice the threshold
    # at which it leaves, so that one near it does not move at every update)
    profile = tmp_path / "zipf.moetrace"
    final_ppl(perplexity(cpu_builds, tiny_moe, story, "--moe-route", "zipf:3", "--moe-trace-out", str(profile)))
    args = (*GPU, *ADAPT_FAST, "--moe-route", "uniform", "--moe-hot-profile", str(profile))
    env = {**IN_PLACE, "LLAMA_MOE_WORKER_MIN_COLD": min_cold}
    follow = perplexity(cpu_builds, tiny_moe, story, *args, env={**env, **FOLLOW})
    fixed = perplexity(cpu_builds, tiny_moe, story, *args, env=env)
    # the worker sums its share apart from the CPU backend's experts, in another order: with uniform routing's three cold
    # experts a token the two differ by 8e-7 here
    assert math.isclose(float(final_ppl(follow)), float(final_ppl(fixed)), rel_tol=1e-5)
    assert "for now: the adaptive set moves layers to and from the worker" in follow.stderr
    assert "in 0 of the 2 split layers" in follow.stderr
    moved = parse_moe_worker_follow(follow.stderr)
    assert (moved.layers_at_end, moved.layers, moved.changes) == ((2, 2, 2) if joined else (0, 2, 0))
    assert (worker_line(follow)[1] > 0) == joined
    assert "no split layer expects cold selections enough, the worker is not started" in fixed.stderr
    assert worker_line(fixed) == (0, 0, 0)


AUTO_THREADS = min(8, max(1, (os.cpu_count() or 1) // 2))
"""--moe-cold-worker auto: half the hardware threads, at most 8."""


@pytest.mark.parametrize("args", [(), ("--moe-cold-worker", "auto")])
def test_the_tools_start_the_worker_by_default_with_the_cold_experts_on_the_gpu(cpu_builds, tiny_moe, story, one_pass, args):
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, *args, env=IN_PLACE)
    assert final_ppl(proc) == one_pass
    assert (f"a CPU worker of {AUTO_THREADS} threads (auto: half the hardware threads, at most 8) computes 50% of each token's "
            "cold experts in 2 of the 2 split layers") in proc.stderr
    n_threads, n_jobs, _ = worker_line(proc)
    assert n_threads == AUTO_THREADS and n_jobs > 0


@pytest.mark.parametrize("args", [
    ("--cpu-moe", "--moe-hot-mib", "1"),                        # cold experts on the CPU (the default --moe-cold cpu)
    ("--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "hybrid"),
    ("--cpu-moe",),                                             # no hot experts
])
def test_auto_leaves_the_worker_out_where_it_cannot_serve_without_an_error(cpu_builds, tiny_moe, story, args):
    # where an explicit number of threads is refused (test_a_worker_without_what_it_needs_is_refused)
    proc = perplexity(cpu_builds, tiny_moe, story, *args, "--moe-cold-worker", "auto", env=IN_PLACE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "a CPU worker of" not in proc.stderr and worker_line(proc) == (0, 0, 0)


def test_auto_says_why_it_starts_no_worker_where_no_layer_qualifies(cpu_builds, tiny_moe, story):
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, env={**IN_PLACE, "LLAMA_MOE_WORKER_MIN_COLD": "100"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--moe-cold-worker auto: no split layer expects cold selections enough, the worker is not started" in proc.stderr
    assert worker_line(proc) == (0, 0, 0)


def test_llama_bench_takes_the_option(cpu_builds, tiny_moe):
    # a test without a budget (0) runs without the worker, as without the other hot expert options
    bench = [cpu_builds / "cpu" / "bin" / "llama-bench", "-m", tiny_moe, "-p", "0", "-n", "4", "-r", "1", "-t", "2", "-o", "jsonl",
             "-ncmoe", "9", "--repack", "0", "-lm", "none", "--moe-hot-mib", "0,1", "--moe-cold", "gpu"]
    proc = subprocess.run([*bench, "-v", "--moe-cold-worker", "1"], check=False, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env={**os.environ, **IN_PLACE})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr.count("a CPU worker of 1 threads computes 50% of each token's cold experts in 2 of the 2 split layers") == 1
    assert worker_line(proc)[1] > 0
    bad = subprocess.run([*bench, "--moe-cold-worker", "-1"], check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0 and "error: invalid parameter for argument: --moe-cold-worker" in bad.stderr
    # without the option, or with auto, it starts the worker as the other tools do (0032)
    for auto in ([], ["--moe-cold-worker", "auto"]):
        proc = subprocess.run([*bench, "-v", *auto], check=False, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL, env={**os.environ, **IN_PLACE})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stderr.count(f"a CPU worker of {AUTO_THREADS} threads (auto: half the hardware threads, at most 8) computes 50%") == 1


def test_llama_bench_sweeps_the_cold_options(cpu_builds, tiny_moe):
    # 0040: one run holds where the cold experts go, the worker's share and threads and adaptation side by side, a row each
    bench = [cpu_builds / "cpu" / "bin" / "llama-bench", "-m", tiny_moe, "-p", "0", "-n", "4", "-r", "1", "-t", "2",
             "-ncmoe", "9", "--repack", "0", "-lm", "none", "--moe-hot-mib", "1"]
    sweep = ["--moe-cold", "cpu,gpu", "--moe-cold-cpu-share", "0.3,0.7", "--moe-cold-worker", "0,1", "--moe-hot-adapt", "0,8"]
    proc = subprocess.run([*bench, *sweep, "-o", "jsonl", "-v"], check=False, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, env={**os.environ, **IN_PLACE})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = sorted((r["moe_cold"], r["moe_cold_cpu_share"], r["moe_cold_worker"], r["moe_hot_adapt"])
                  for r in map(json.loads, proc.stdout.splitlines()))
    # a worker only beside the GPU's reads in place: the cpu tests run without one
    assert rows == sorted((cold, share, worker, adapt) for cold in ("cpu", "gpu") for share in (0.3, 0.7) for worker in ("0", "1")
                          for adapt in (0, 8) if worker == "0" or cold == "gpu")
    for share in (30, 70):  # each share reached its two contexts with a worker (adaptive and not)
        assert proc.stderr.count(f"a CPU worker of 1 threads computes {share}% of each token's cold experts") == 2
    table = subprocess.run([*bench, "--moe-cold-cpu-share", "0.3,0.7"], check=False, capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL, env={**os.environ, **IN_PLACE})
    header = table.stdout.splitlines()[0]
    assert "moe_cold_cpu_share" in header and "moe_cold_worker" not in header  # a column for what varies or is not the default
    for flag, value in (("--moe-cold", "gpu,tpu"), ("--moe-cold-cpu-share", "0.5,1.5"), ("--moe-hot-adapt", "8,-1")):
        bad = subprocess.run([*bench, flag, value], check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert bad.returncode != 0 and "error: invalid parameter for argument: " + flag in bad.stderr


@pytest.mark.parametrize("value, says", [("l1", "the next row into L1 (as asked"), ("l2", "their rows into L2, 2 KiB ahead (as asked")])
def test_the_worker_asks_for_its_rows_where_told(cpu_builds, tiny_moe, story, one_pass, value, says):
    # 0034: where it asks does not change a sum
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1",
                      env={**IN_PLACE, "LLAMA_MOE_WORKER_PREFETCH": value})
    assert final_ppl(proc) == one_pass
    assert f"llama_moe_worker: the threads ask for {says}; LLAMA_MOE_WORKER_PREFETCH=l1 or l2)" in proc.stderr


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists() or platform.machine() not in ("x86_64", "AMD64"), reason="x86 Linux: the vendor in /proc/cpuinfo")
def test_by_default_amd_cpus_ask_into_l2_and_the_others_for_the_next_row(cpu_builds, tiny_moe, story):
    amd = "AuthenticAMD" in Path("/proc/cpuinfo").read_text()
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1", env=IN_PLACE)
    where = "their rows into L2, 2 KiB ahead" if amd else "the next row into L1"
    assert f"llama_moe_worker: the threads ask for {where} (this CPU's default;" in proc.stderr


def test_a_prefetch_other_than_l1_or_l2_is_refused(cpu_builds, tiny_moe, story):
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1",
                      env={**IN_PLACE, "LLAMA_MOE_WORKER_PREFETCH": "L2"})
    assert proc.returncode != 0
    assert ("LLAMA_MOE_WORKER_PREFETCH=L2: give l1 (the next row into L1) or l2 (2 KiB ahead into L2), or unset it for the CPU's "
            "default") in proc.stderr


SLEPT = re.compile(r"llama_moe_worker: the threads slept (\d+) times, polling (\d+) us after a decode step first")


def test_the_threads_sleep_between_decode_steps_where_told(cpu_builds, tiny_moe, story, one_pass):
    # 0051: with LLAMA_MOE_WORKER_POLL_US=0 the threads sleep in the gaps between steps, by default only after 20 ms without one
    # (tried: the variable read but the threads still polling 20 ms: as many sleeps as the default)
    def sleeps(env):
        proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "2", env={**IN_PLACE, **env})
        assert final_ppl(proc) == one_pass
        slept, poll_us = (int(v) for v in SLEPT.search(proc.stderr).groups())
        return proc.stderr, slept, poll_us
    text, slept, poll_us = sleeps({"LLAMA_MOE_WORKER_POLL_US": "0"})
    assert "llama_moe_worker: the threads poll 0 us after a decode step before they sleep (LLAMA_MOE_WORKER_POLL_US)" in text
    default_text, default_slept, default_poll_us = sleeps({})
    assert (poll_us, default_poll_us) == (0, 20000)
    assert "before they sleep (LLAMA_MOE_WORKER_POLL_US)" not in default_text
    assert slept > default_slept


RAN_ON = re.compile(r"llama_moe_worker: the threads computed on CPUs ([\d,]+) \((.*)\)")


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2, reason="two CPUs to pin apart")
def test_the_threads_run_on_the_cpus_they_are_pinned_to(cpu_builds, tiny_moe, story, one_pass):
    # 0052: each run pins the worker's two threads to one CPU; the log names the CPUs they computed on (tried: the
    # variable read but no thread pinned: the threads ran on both CPUs in one of the runs at least)
    for cpu in sorted(os.sched_getaffinity(0))[:2]:
        proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "2",
                          env={**IN_PLACE, "LLAMA_MOE_WORKER_CPUS": str(cpu)})
        assert final_ppl(proc) == one_pass
        assert f"the threads are pinned to CPUs {cpu}-{cpu}, one a thread in turn (LLAMA_MOE_WORKER_CPUS)" in proc.stderr
        assert RAN_ON.search(proc.stderr).groups() == (str(cpu), f"pinned to {cpu}-{cpu}")


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2, reason="two CPUs to pin apart")
def test_the_threads_are_pinned_apart_from_openmp_s_bound_threads(cpu_builds, tiny_moe, story, one_pass):
    # as bench-placements' *-pinned configurations run: OpenMP binds the initial thread, which creates the context, to the
    # first CPU; the worker's CPU is still one the process may run on (tried: the bound thread's own affinity as the CPUs
    # allowed, as 0052 first did: refused, "may run on (0)")
    first, second = sorted(os.sched_getaffinity(0))[:2]
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "2",
                      env={**IN_PLACE, "OMP_PLACES": f"{{{first}}}", "OMP_PROC_BIND": "close", "LLAMA_MOE_WORKER_CPUS": str(second)})
    assert final_ppl(proc) == one_pass
    assert RAN_ON.search(proc.stderr).groups() == (str(second), f"pinned to {second}-{second}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pinning is built for Linux")
@pytest.mark.parametrize("value", ["-1", "0-", "1-0", "a", "", "99999", "0,1"])
def test_cpus_the_process_may_not_run_on_are_refused(cpu_builds, tiny_moe, story, value):
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1",
                      env={**IN_PLACE, "LLAMA_MOE_WORKER_CPUS": value})
    allowed = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    assert proc.returncode != 0
    assert (f"LLAMA_MOE_WORKER_CPUS={value}: give FIRST-LAST (or one CPU) of the CPUs this process may run on ({allowed}) for "
            "the worker's threads, or unset it to leave them to the OS") in proc.stderr


@pytest.mark.parametrize("value", ["-1", "20ms", "", "1000000001"])
def test_a_poll_time_out_of_range_is_refused(cpu_builds, tiny_moe, story, value):
    proc = perplexity(cpu_builds, tiny_moe, story, *ONE_PASS, *GPU, "--moe-cold-worker", "1",
                      env={**IN_PLACE, "LLAMA_MOE_WORKER_POLL_US": value})
    assert proc.returncode != 0
    assert (f"LLAMA_MOE_WORKER_POLL_US={value}: give the microseconds the worker's threads poll after a decode step before they "
            "sleep (0 to 1000000000), or unset it for 20000") in proc.stderr
