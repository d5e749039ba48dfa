"""The series' kernels that read host memory do so with global (and shared) loads, never generic ones (builder/ptx_loads.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from builder.build import configured_variant
from builder.pin import load_pin
from builder.ptx_loads import is_generic, kernel_names, kernels_with_generic_loads, source_ptx
from builder.settings import Settings
from builder.variants import Variant

PTX = """
.visible .entry _Z6placedPKv(
\t.param .u64 _Z6placedPKv_param_0
)
{
\tld.param.u64 \t%rd1, [_Z6placedPKv_param_0];
\tld.global.nc.u32 \t%r1, [%rd1];
\tld.volatile.global.u32 \t%r2, [%rd1];
\tld.shared::cta.f32 \t%f1, [%r3];
\tld.local.f32 \t%f2, [%rd2];
\tret;
}
.entry _Z7genericPKv(
\t.param .u64 _Z7genericPKv_param_0
)
{
\tld.param.u64 \t%rd1, [_Z7genericPKv_param_0];
\t@%p1 ld.u16 \t%rs1, [%rd1+2];
\tret;
}
.weak .entry _Z8vectoredPKv(
)
{
\tld.v4.u32 \t{%r1, %r2, %r3, %r4}, [%rd1];
}
"""


@pytest.mark.parametrize("opcode, generic", [("ld.u32", True), ("ld.volatile.v4.u32", True), ("ld.s8", True),
                                             ("ld.global.nc.u32", False), ("ld.volatile.global.u32", False),
                                             ("ld.shared::cta.f32", False), ("ld.param.u64", False),
                                             ("ld.const.u32", False), ("ld.local.f32", False)])
def test_a_load_is_generic_without_a_state_space(opcode, generic):
    assert is_generic(opcode) is generic


def test_the_kernels_with_generic_loads_are_named_in_order():
    assert kernel_names(PTX) == ["_Z6placedPKv", "_Z7genericPKv", "_Z8vectoredPKv"]
    assert kernels_with_generic_loads(PTX) == ["_Z7genericPKv", "_Z8vectoredPKv"]
    assert kernels_with_generic_loads(PTX.split(".entry _Z7")[0]) == []


GUARDED = {
    "mmvq.cu": r"_Z13mul_mat_vec_qIL9ggml_type\d+ELi1E(Lb[01]E){3}Lb1EE",  # one-token mat-vecs with the series' ids (ids_ext)
    "moe-host.cu": r"_Z13moe_host_recv",
    "moe-prefetch.cu": r"_Z17moe_prefetch_copy",
}
"""The series' CUDA sources whose kernels read host memory, and a pattern of the kernels there that do."""


@pytest.fixture(scope="module")
def series_build(cuda_check_setup, tmp_path_factory) -> Path:
    """The fork's sm_75 build folder, configured (nothing compiled), in a cache of its own."""
    tree, opts, _ = cuda_check_setup
    settings = Settings(load_pin().path, tmp_path_factory.mktemp("ptx-cache"), None, None, None, True)
    return configured_variant(tree, Variant("75"), settings, opts, build_name="compile-check",
                              extra_options=("-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",)).build_dir


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.parametrize("source, guarded", GUARDED.items())
def test_the_series_kernels_load_no_generic_memory(series_build, tmp_path, source, guarded):
    """The hot mat-vec reads a cold expert's rows in place (global loads) or staged (shared loads); the worker's recv and
    the prefetch copy read host memory: 0049 as first built read its rows through one pointer for both memories, generic
    loads that halved the speed of its reads of host memory on an H100."""
    ptx = source_ptx(series_build, f"ggml/src/ggml-cuda/{source}", tmp_path / f"{source}.ptx")
    assert [n for n in kernel_names(ptx) if re.match(guarded, n)]  # the kernels it guards are there
    assert kernels_with_generic_loads(ptx) == []
