"""The engine on the other MoE architectures make-model writes (olmoe; llama, Mixtral's layout; deepseek2 with a leading dense
layer and a shared expert, with V2's routing and with V3's: sigmoid gating, a selection bias, weights normalised and
scaled) and on qwen3moe with Q4_K_M's mix of types (Q4_K gate and up, the down experts Q6_K in every other
layer, so that the layers' experts differ in bytes), in the CPU build with the cold experts read in place (LLAMA_MOE_COLD_IN_PLACE_CPU=1, 0026): the
CPU worker sharing experts in parts (0028-0036), the adaptive set swapping beside the next ubatch (0037) and the worker's
deferral (0038) run there as on qwen3moe, and the exact ones keep the answer of the experts all on the CPU up to rounding."""

from __future__ import annotations

import dataclasses

import pytest
from llama_tools import final_ppl, perplexity

from builder.report.parse import parse_kld, parse_moe_adapt, parse_moe_worker
from builder.synth_model import ModelSpec, normalize_spec, resolve_vocab, write_moe_model

pytestmark = pytest.mark.slow

N_LAYER = 4
MODELS = {
    "olmoe": ModelSpec(arch="olmoe"),
    "llama": ModelSpec(arch="llama"),
    "deepseek2": ModelSpec(arch="deepseek2"),
    "deepseek2-v3-routing": ModelSpec(arch="deepseek2", v3_routing=True),
    "qwen3moe-q4k-q6k": ModelSpec(arch="qwen3moe", type="Q4_K", down_types=("Q6_K", "Q4_K")),
}
"""Each with 4 layers, experts of 512 rows (two parts) and a Zipf-skewed router (below)."""
MOE_LAYERS = {"olmoe": 4, "llama": 4, "deepseek2": 3, "deepseek2-v3-routing": 3, "qwen3moe-q4k-q6k": 4}
"""deepseek2's first layer is dense (make-model's default)."""
DEFERRING_LAYERS = {"olmoe": 2, "llama": 2, "deepseek2": 1, "deepseek2-v3-routing": 1, "qwen3moe-q4k-q6k": 2}
"""Layers whose next layer has experts and is not the last (0038's rule): 0-1 of 4, and deepseek2's layer 1."""
SPLIT = ("-b", "1", "-ub", "1", "--cpu-moe", "--moe-hot-mib", "2", "--moe-cold", "gpu", "--moe-cold-worker", "2",
         "--moe-cold-cpu-share", "0.5")
"""Two or three of each layer's 16 experts hot (2 MiB), the others shared between the worker and the CPU backend reading in place."""
KLD = ("-c", "128")
"""Two chunks of 128 tokens: enough scored tokens for llama-perplexity's KLD statistics."""
IN_PLACE = {"LLAMA_MOE_COLD_IN_PLACE_CPU": "1"}
ROUNDING = 2e-5
"""Mean KLD against the experts all on the CPU that sums added in another order stay below: the worker and the adaptive set
gave at most 5e-6 (same top token 100 %) on these models, and upstream's own repacking of the weights 5e-6 to 2.3e-5. Shown
failing: the worker's answer halved (the worker and adaptive tests) and a swap copying the outgoing expert (the adaptive ones)."""
PARTS = "the worker and the CPU backend share the cold experts of {} of these layers in parts of 256 rows"
DEFERRING = "LLAMA_MOE_WORKER_DEFER: the worker's experts of {} layers join the next layer's output"


@pytest.fixture(scope="module", params=sorted(MODELS))
def arch_model(request, pinned_tree, tmp_path_factory):
    """The model, routed with a Zipf skew so that the hot experts are selected and the adaptive set has swaps to make."""
    name = request.param
    spec = normalize_spec(dataclasses.replace(MODELS[name], n_layer=N_LAYER, expert_ff=512, router_skew=1.0))
    path = tmp_path_factory.mktemp("models") / f"{name}.gguf"
    write_moe_model(path, spec, resolve_vocab(None, spec.arch, pinned_tree))
    return name, path


@pytest.fixture(scope="module")
def all_on_cpu(cpu_builds, arch_model, story, tmp_path_factory):
    """The logits of the experts all on the CPU."""
    _, model = arch_model
    logits = tmp_path_factory.mktemp("logits") / "all-on-cpu.kld"
    final_ppl(perplexity(cpu_builds, model, story, *KLD, "-b", "1", "-ub", "1", "--cpu-moe", "--kl-divergence-base", logits))
    return logits


def against_all_on_cpu(cpu_builds, model, story, logits, *args, env):
    proc = perplexity(cpu_builds, model, story, *KLD, *args, "--kl-divergence-base", logits, "--kl-divergence", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, parse_kld(proc.stdout + proc.stderr)


def test_the_worker_shares_experts_in_parts_and_the_answer_holds(cpu_builds, arch_model, story, all_on_cpu):
    name, model = arch_model
    proc, kld = against_all_on_cpu(cpu_builds, model, story, all_on_cpu, *SPLIT, env=IN_PLACE)
    assert kld.mean_kld <= ROUNDING
    assert PARTS.format(MOE_LAYERS[name]) in proc.stderr
    work = parse_moe_worker(proc.stderr)
    assert 0 < work.in_part <= work.experts


def test_the_adaptive_set_swaps_and_the_answer_holds(cpu_builds, arch_model, story, all_on_cpu):
    _, model = arch_model
    proc, kld = against_all_on_cpu(cpu_builds, model, story, all_on_cpu, *SPLIT, "--moe-hot-adapt", "8",
                                   "--moe-hot-adapt-noise", "0", env=IN_PLACE)
    assert kld.mean_kld <= ROUNDING
    assert parse_moe_adapt(proc.stderr).swaps > 0


def test_the_worker_defers_into_the_next_layer_with_experts(cpu_builds, arch_model, story, all_on_cpu):
    # lossy: its accuracy is measured on a trained model (device-run.sh fidelity worker-defer), not on random weights
    name, model = arch_model
    proc, _ = against_all_on_cpu(cpu_builds, model, story, all_on_cpu, *SPLIT, env={**IN_PLACE, "LLAMA_MOE_WORKER_DEFER": "1"})
    assert DEFERRING.format(DEFERRING_LAYERS[name]) in proc.stderr
