"""Patch 0038 in the CPU build: with LLAMA_MOE_WORKER_DEFER=1 the worker of --moe-cold-worker hands the answer of a layer's
cold experts to the next layer, whose experts' output it joins (expert deferral, lossy), with the cold experts read in place
by the CPU (LLAMA_MOE_COLD_IN_PLACE_CPU=1, 0026). Exact where the layers in between add nothing: a model whose layers 1 and 2
have all-zero attention outputs and expert down projections gives the answer of no deferral, up to the rounding of a sum in
another order. Its speed and its accuracy on a trained model are measured on the GPU machine (bench-placements.py
hot-gpu-worker-defer, device-run.sh fidelity worker-defer)."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest
from llama_tools import final_ppl, perplexity

from builder.report.parse import parse_moe_worker
from builder.synth_model import ModelSpec, resolve_vocab, write_moe_model

pytestmark = pytest.mark.slow

N_LAYER = 4
SILENT = (1, 2)
"""The layers that add nothing to the residual stream in the zeroed model: layer 0 defers into 1, layer 1 into 2; layer 2
does not defer (its next layer is the last, which may compute only the output rows)."""
HOT = ("-b", "1", "-ub", "1", "--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "gpu")
IN_PLACE = {"LLAMA_MOE_COLD_IN_PLACE_CPU": "1"}
DEFER = {**IN_PLACE, "LLAMA_MOE_WORKER_DEFER": "1"}
DEFERRING = "LLAMA_MOE_WORKER_DEFER: the worker's experts of {} layers join the next layer's output"
CLOSE = 2e-4
"""The PPL of a sum in another order, relative: the deferral on `make-model --layers 4` with layers 1-2 zeroed moved it by 6e-5
(mean KLD below 5e-7), on the model as it is by 3.8e-3. Shown failing on this file's model: the deferred answers left out
moved it by 7.2e-3 (the first test), one job slot for both layers by 5.3e-3 on make-model's, and a graph that received every
answer in its own layer left the PPL of the model as it is unchanged (the second)."""


@pytest.fixture(scope="module")
def models(pinned_tree, tmp_path_factory) -> tuple[Path, Path]:
    """A 4-layer model, and the same with layers 1 and 2 silent (attention output and expert down projections all zero)."""
    folder = tmp_path_factory.mktemp("models")
    model, silent = folder / "defer-qwen3moe.gguf", folder / "defer-silent-qwen3moe.gguf"
    write_moe_model(model, ModelSpec(arch="qwen3moe", n_layer=N_LAYER), resolve_vocab(None, "qwen3moe", pinned_tree))
    silent.write_bytes(model.read_bytes())
    reader = gguf.GGUFReader(silent, "r+")
    names = {f"blk.{il}.{name}.weight" for il in SILENT for name in ("attn_output", "ffn_down_exps")}
    zeroed = [t for t in reader.tensors if t.name in names]
    assert len(zeroed) == len(names)
    for tensor in zeroed:
        tensor.data[...] = 0  # quantized blocks of zero bytes have a zero scale
    reader.data.flush()
    return model, silent


def worker_run(cpu_builds, model, story, env, share="0.5", threads="2"):
    proc = perplexity(cpu_builds, model, story, *HOT, "--moe-cold-worker", threads, "--moe-cold-cpu-share", share, env=env)
    return proc, float(final_ppl(proc))


def test_deferred_experts_join_the_next_layers_output(cpu_builds, models, story):
    _, silent = models
    proc, deferred = worker_run(cpu_builds, silent, story, DEFER)
    _, undeferred = worker_run(cpu_builds, silent, story, IN_PLACE)
    assert DEFERRING.format(2) in proc.stderr
    assert deferred == pytest.approx(undeferred, rel=CLOSE)
    assert parse_moe_worker(proc.stderr).experts > 0


def test_deferring_changes_the_answer_where_every_layer_computes(cpu_builds, models, story):
    model, _ = models
    _, deferred = worker_run(cpu_builds, model, story, DEFER)
    _, undeferred = worker_run(cpu_builds, model, story, IN_PLACE)
    assert deferred != pytest.approx(undeferred, rel=CLOSE)  # lossy: its cost in accuracy is measured on a trained model


def test_a_deferring_worker_answers_the_same_at_any_thread_count(cpu_builds, models, story):
    # each output row is one thread's sum: a layer that read a deferred answer before the worker wrote it would differ
    model, _ = models
    answers = {worker_run(cpu_builds, model, story, DEFER, threads=threads)[1] for threads in ("1", "3")}
    assert len(answers) == 1


def test_nothing_to_defer_changes_nothing(cpu_builds, models, story):
    model, _ = models
    _, none = worker_run(cpu_builds, model, story, DEFER, share="0")
    _, no_worker = worker_run(cpu_builds, model, story, IN_PLACE, share="0")
    assert none == no_worker


def test_no_layer_defers_into_the_last_or_without_the_variable(cpu_builds, tiny_moe, models, story):
    model, _ = models
    two_layers, _ = worker_run(cpu_builds, tiny_moe, story, DEFER)
    assert DEFERRING.format(0) in two_layers.stderr  # layer 0's next layer is the last
    undeferred, _ = worker_run(cpu_builds, model, story, IN_PLACE)
    assert "LLAMA_MOE_WORKER_DEFER" not in undeferred.stderr
