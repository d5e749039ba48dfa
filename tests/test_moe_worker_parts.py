"""Patches 0035-0036 in the CPU build: where an expert's n_ff is two or more parts of 256 rows, the worker of --moe-cold-worker
and the backend share a token's cold experts in parts (a lone cold expert: the worker its first rows of gate and up and columns
of down, the backend the rest), with the cold experts read in place by the CPU (LLAMA_MOE_COLD_IN_PLACE_CPU=1, 0026). The
answer is that of whole experts up to the rounding of a sum in two parts. Their speed is measured on the GPU machine
(scripts/bench-placements.py hot-gpu-worker against hot-gpu-worker-whole)."""

from __future__ import annotations

import pytest
from llama_tools import final_ppl, perplexity

from builder.report.parse import parse_moe_worker
from builder.synth_model import ModelSpec, resolve_vocab, write_moe_model

pytestmark = pytest.mark.slow

HOT = ("-b", "4", "-ub", "4", "--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "gpu")
"""Steps of 4 tokens read in one pass (0012), one expert of each layer hot, the others read in place by the CPU backend."""
IN_PLACE = {"LLAMA_MOE_COLD_IN_PLACE_CPU": "1"}
WHOLE = {**IN_PLACE, "LLAMA_MOE_WORKER_WHOLE": "1"}
SHARED = "the worker and the CPU backend share the cold experts of {} of these layers in parts of 256 rows"
CLOSE = 2e-4
"""The PPL of a run whose expert sums are added in another order, relative to the one-pass run's: 4.7e-5 on this model, with
whole experts on the worker as with parts; a part left out or computed by both sides moved it by 2.4e-3 to 6e-3."""


@pytest.fixture(scope="module")
def one_pass(cpu_builds, parts_moe, story):
    """The layers read in one pass without the worker."""
    return float(final_ppl(perplexity(cpu_builds, parts_moe, story, *HOT, "--moe-cold-worker", "0", env=IN_PLACE)))


def worker_run(cpu_builds, model, story, share, env, threads="2"):
    proc = perplexity(cpu_builds, model, story, *HOT, "--moe-cold-worker", threads, "--moe-cold-cpu-share", share, env=env)
    return proc, float(final_ppl(proc)), parse_moe_worker(proc.stderr)


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("share", ["0.5", "0.3"])
def test_the_worker_and_the_backend_share_experts_in_parts_and_the_answer_holds(cpu_builds, parts_moe, story, one_pass, share, threads):
    # tried: the backend computing the worker's part as well (neither its rows of gate and up zero nor its columns of down
    # left out; either alone keeps the answer), and the worker leaving its part of a split expert out: each moved the PPL
    # by 2.4e-3 or more
    proc, ppl, work = worker_run(cpu_builds, parts_moe, story, share, IN_PLACE, threads)
    assert SHARED.format(2) in proc.stderr
    assert 0 < work.in_part <= work.experts
    assert ppl == pytest.approx(one_pass, rel=CLOSE)


def test_whole_experts_on_request_as_before(cpu_builds, parts_moe, story, one_pass):
    proc, ppl, work = worker_run(cpu_builds, parts_moe, story, "0.5", WHOLE)
    assert SHARED.format(0) in proc.stderr
    assert work.in_part == 0 and work.experts > 0
    assert ppl == pytest.approx(one_pass, rel=CLOSE)


def test_parts_read_fewer_expert_bytes_than_whole_experts_for_as_many_selections(cpu_builds, parts_moe, story):
    # the same selections handed over (a split one counts as an expert), each split one read in part by the worker
    _, _, parts = worker_run(cpu_builds, parts_moe, story, "0.5", IN_PLACE)
    _, _, whole = worker_run(cpu_builds, parts_moe, story, "0.5", WHOLE)
    assert parts.jobs == whole.jobs and parts.in_part > 0
    assert parts.gb < whole.gb


@pytest.mark.parametrize("n_embd, expert_ff", [(512, 256), (512, 512)])
def test_experts_of_one_part_or_square_ones_stay_whole(cpu_builds, pinned_tree, tmp_path, story, n_embd, expert_ff):
    # 256 rows: one part, nothing to share; 512 rows of 512 columns: the nodes could not tell gate and up from down by their
    # shape (tried: experts of one part split, which the send refuses with an abort; square ones split, which the log shows)
    model = tmp_path / "model.gguf"
    write_moe_model(model, ModelSpec(arch="qwen3moe", n_layer=2, n_embd=n_embd, expert_ff=expert_ff),
                    resolve_vocab(None, "qwen3moe", pinned_tree))
    proc, _, work = worker_run(cpu_builds, model, story, "0.5", IN_PLACE)
    assert SHARED.format(0) in proc.stderr
    assert work.in_part == 0 and work.experts > 0


PLANE = {**IN_PLACE, "LLAMA_MOE_WORKER_DOWN_PLANE": "1"}
"""0053: down's first part of each row read from planes of its own."""


@pytest.mark.parametrize("share", ["0.3", "0.4"])
def test_down_s_first_part_read_from_planes_gives_the_rows_answer(cpu_builds, parts_moe, story, share):
    # a lone cold expert gives the worker round(3*share) of its 3 parts: one here (at 0.5, two, which read down's rows); the
    # same dot products of the same bytes in the same order: the same PPL to the last digit (tried: each plane's rows copied
    # from the next row of down, which moved it)
    rows, rows_ppl, _ = worker_run(cpu_builds, parts_moe, story, share, IN_PLACE)
    planes, planes_ppl, work = worker_run(cpu_builds, parts_moe, story, share, PLANE)
    assert "copied into planes" not in rows.stderr
    assert "llama_moe_worker: the first 256 columns of down's rows copied into planes in 2 layers" in planes.stderr
    assert work.in_part > 0
    assert planes_ppl == rows_ppl


def test_whole_experts_have_no_planes(cpu_builds, parts_moe, story):
    proc, _, _ = worker_run(cpu_builds, parts_moe, story, "0.5", {**WHOLE, "LLAMA_MOE_WORKER_DOWN_PLANE": "1"})
    assert "copied into planes in 0 layers, 0.0 MiB" in proc.stderr


@pytest.mark.parametrize("value", ["yes", "2", ""])
def test_a_bad_plane_setting_is_refused(cpu_builds, parts_moe, story, value):
    proc = perplexity(cpu_builds, parts_moe, story, *HOT, "--moe-cold-worker", "1",
                      env={**IN_PLACE, "LLAMA_MOE_WORKER_DOWN_PLANE": value})
    assert proc.returncode != 0
    assert (f"LLAMA_MOE_WORKER_DOWN_PLANE={value}: give 1 to copy the first part of down's rows into planes that the worker "
            "reads, or 0 (the default) to read them in the rows") in proc.stderr
