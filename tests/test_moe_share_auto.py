"""Patches 0047-0048 in the CPU build: --moe-cold-cpu-share auto moves each layer's share of the CPU worker by the backend's
waits for its answers, from 0.5, within the least share at which a token's lone cold selection still gives the worker a part
and 1, through a tensor that the layer's ggml_moe_host_send reads when it runs (the graphs are not built anew). With the cold
experts read in place by the CPU (LLAMA_MOE_COLD_IN_PLACE_CPU=1, 0026) the backend is the CPU's; the answer stays that of the
layers read in one pass up to the order of the experts' sums. Whether auto decodes faster than 0.5 is measured on the GPU
machine (scripts/bench-placements.py hot-gpu-worker-auto against hot-gpu-worker)."""

from __future__ import annotations

import pytest
from llama_tools import final_ppl, perplexity

from builder.report.parse import parse_graphs_reused, parse_moe_worker, parse_moe_worker_share

pytestmark = pytest.mark.slow

HOT = ("-b", "1", "-ub", "1", "--chunks", "5", "--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "gpu")
"""Steps of one token read in one pass (0012), one expert of each layer hot, the others read in place by the CPU backend; 320
tokens, so that each layer answers ten windows of 32 jobs and a share can move from 0.5 to its least (7 moves)."""
IN_PLACE = {"LLAMA_MOE_COLD_IN_PLACE_CPU": "1"}
CLOSE = 2e-4
"""The PPL of a run whose expert sums are added in another order, relative to the one-pass run's (test_moe_worker_parts.py)."""
STARTS = ("computes a share of each token's cold experts that starts at 50% and follows the CPU backend's waits for it in each "
          "layer in 2 of the 2 split layers")
LEAST = {"0": 0.18, "1": 0.51}
"""By LLAMA_MOE_WORKER_WHOLE, the least share as the log rounds it: three parts of 256 rows, where it gives the worker one part
of a lone cold selection (0.5/3 + 0.01), or whole experts, where it gives the worker a lone cold selection (0.51)."""


@pytest.fixture(scope="module")
def one_pass(cpu_builds, parts_moe, story):
    return float(final_ppl(perplexity(cpu_builds, parts_moe, story, *HOT, "--moe-cold-worker", "0", env=IN_PLACE)))


def auto_run(cpu_builds, model, story, whole="0"):
    return perplexity(cpu_builds, model, story, *HOT, "--moe-cold-worker", "1", "--moe-cold-cpu-share", "auto",
                      env={**IN_PLACE, "LLAMA_MOE_WORKER_WHOLE": whole})


@pytest.mark.parametrize("whole", ["0", "1"])
def test_a_worker_the_backend_waits_for_gets_less_down_to_the_least_share(cpu_builds, parts_moe, story, one_pass, whole):
    # one worker thread against two of the backend's, which have only one hot expert a layer to compute besides their share of
    # the cold ones: the backend waits for the worker in almost every job, so the shares move down from 0.5 until the least
    # (in parts a layer reaches it). Tried: the share moving up where the backend waited (it ended at 0.70 to 1.00), and no
    # least share (0.05 and 0.10 at the lowest, in parts and whole)
    proc = auto_run(cpu_builds, parts_moe, story, whole)
    assert float(final_ppl(proc)) == pytest.approx(one_pass, rel=CLOSE)
    assert STARTS in proc.stderr
    share = parse_moe_worker_share(proc.stderr)
    assert LEAST[whole] <= share.low <= share.mean <= share.high <= max(0.5, LEAST[whole]) and share.step == 0.05
    assert parse_moe_worker(proc.stderr).recv_waited_pct > 90
    if whole == "0":
        assert share.moves > 0 and share.low == LEAST[whole]


def test_the_share_moves_without_building_the_graphs_anew(cpu_builds, parts_moe, story):
    # the shares reach the send nodes through their tensor: the steps reuse their graph as often with auto as with 0.5 (tried:
    # each move counted as a change of the worker's layers, 0041's, which builds the graphs anew: 302 reused against 310)
    fixed = perplexity(cpu_builds, parts_moe, story, *HOT, "--moe-cold-worker", "1", "--moe-cold-cpu-share", "0.5", env=IN_PLACE)
    moved = auto_run(cpu_builds, parts_moe, story)
    assert parse_moe_worker_share(moved.stderr).moves > 0
    assert parse_graphs_reused(moved.stderr) == parse_graphs_reused(fixed.stderr)


@pytest.mark.parametrize("args, message", [
    (("--moe-cold-cpu-share", "1.5"), 'error while handling argument "--moe-cold-cpu-share": must be auto or a share from 0 to 1'),
    (("--moe-cold-cpu-share", "-1"), 'error while handling argument "--moe-cold-cpu-share": must be auto or a share from 0 to 1'),
    (("--moe-cold-cpu-share", "0.5x"), 'error while handling argument "--moe-cold-cpu-share": must be auto or a share from 0 to 1'),
    (("--moe-cold-cpu-share", "Auto"), 'error while handling argument "--moe-cold-cpu-share": must be auto or a share from 0 to 1'),
    (("--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "hybrid", "--moe-cold-cpu-share", "auto"),
     "--moe-cold-cpu-share auto moves the share of the CPU worker (--moe-cold gpu with --moe-cold-worker); --moe-cold hybrid takes "
     "a share from 0 to 1"),
])
def test_a_share_other_than_auto_or_0_to_1_is_refused(cpu_builds, tiny_moe, story, args, message):
    proc = perplexity(cpu_builds, tiny_moe, story, *args, env=IN_PLACE)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_auto_without_a_worker_says_it_does_nothing(cpu_builds, tiny_moe, story):
    proc = perplexity(cpu_builds, tiny_moe, story, *HOT, "--moe-cold-worker", "0", "--moe-cold-cpu-share", "auto", env=IN_PLACE)
    final_ppl(proc)
    assert ("--moe-cold-cpu-share auto has no effect with --moe-cold gpu; it applies to --moe-cold hybrid and --moe-cold-worker"
            in proc.stderr)
