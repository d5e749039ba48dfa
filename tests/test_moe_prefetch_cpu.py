"""Patch 0024 in the CPU build: --moe-prefetch's bad input is refused before anything loads. The prefetch itself needs
--moe-cold gpu, so a CUDA GPU: its kernels are checked by test-ops (MUL_MAT_ID_HOT, the CPU's cases included), its
decode on the GPU machine (scripts/bench-placements.py hot-gpu-prefetch, hot-gpu-prefetch-oracle)."""

from __future__ import annotations

import pytest
from llama_tools import perplexity

pytestmark = pytest.mark.slow

GPU = ("--cpu-moe", "--moe-hot-mib", "1", "--moe-cold", "gpu")


@pytest.fixture(scope="module")
def trace(cpu_builds, tiny_moe, story, tmp_path_factory):
    """The tiny model's routing on the story: a replay, and a ranking of the same tokens."""
    path = tmp_path_factory.mktemp("prefetch") / "tiny.moetrace"
    assert perplexity(cpu_builds, tiny_moe, story, "--moe-trace-out", str(path)).returncode == 0
    return path


@pytest.mark.parametrize("args, message", [
    (("--cpu-moe", "--moe-hot-mib", "1", "--moe-prefetch", "1"),
     "prefetching cold experts (--moe-prefetch) requires hot experts (--moe-hot-mib) and the cold experts on the GPU (--moe-cold gpu)"),
    (("--moe-prefetch", "1", "--moe-cold", "gpu"),
     "prefetching cold experts (--moe-prefetch) requires hot experts (--moe-hot-mib) and the cold experts on the GPU (--moe-cold gpu)"),
    (GPU + ("--moe-prefetch", "17"), "--moe-prefetch 17: at most 16 prefetch slots a layer"),
    (GPU + ("--moe-prefetch", "1"), "takes the experts to prefetch from a trace (--moe-prefetch-route trace:FILE); give both or neither"),
    (("--moe-prefetch", "-1"), 'error while handling argument "--moe-prefetch": must be 0 or more'),
])
def test_a_prefetch_without_what_it_needs_is_refused(cpu_builds, tiny_moe, story, args, message):
    proc = perplexity(cpu_builds, tiny_moe, story, *args)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_a_ranking_is_replayed_only_beside_the_replayed_routing(cpu_builds, tiny_moe, story, trace):
    expected = ("the experts to prefetch (--moe-prefetch-route) are replayed from a trace (trace:FILE) beside the routing of the same "
                "tokens (--moe-route trace:FILE)")
    for extra in ((), ("--moe-route", "zipf:1.0")):
        proc = perplexity(cpu_builds, tiny_moe, story, *GPU, "--moe-prefetch", "1", "--moe-prefetch-route", f"trace:{trace}", *extra)
        assert proc.returncode != 0
        assert expected in proc.stderr
    proc = perplexity(cpu_builds, tiny_moe, story, *GPU, "--moe-prefetch", "1", "--moe-prefetch-route", str(trace), "--moe-route", f"trace:{trace}")
    assert proc.returncode != 0 and expected in proc.stderr


def test_with_what_it_needs_the_prefetch_reaches_the_gpu_check(cpu_builds, tiny_moe, story, trace):
    # every option accepted: what stops the CPU build is that its layers have no CUDA GPU to read the cold experts in place
    proc = perplexity(cpu_builds, tiny_moe, story, *GPU, "--moe-prefetch", "1", "--moe-prefetch-route", f"trace:{trace}",
                      "--moe-route", f"trace:{trace}")
    assert proc.returncode != 0
    assert "MoE cold experts on the GPU (--moe-cold gpu): layer 0 runs on CPU, which is not a CUDA GPU" in proc.stderr

