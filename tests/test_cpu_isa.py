"""The instruction sets of a build on a CPU with AMX: the native ones, spelled out, less AMX (builder/cpu_isa.py)."""

from __future__ import annotations

import platform

import pytest

from builder.cpu_isa import isa_options, native_macros

AVX512 = {"__AVX512F__", "__AVX512CD__", "__AVX512VL__", "__AVX512DQ__", "__AVX512BW__"}
SAPPHIRE_RAPIDS = {"__SSE4_2__", "__AVX__", "__AVX2__", "__BMI2__", "__FMA__", "__F16C__", "__AVXVNNI__", *AVX512,
                   "__AVX512VBMI__", "__AVX512VNNI__", "__AVX512BF16__", "__AMX_TILE__", "__AMX_INT8__", "__AMX_BF16__"}


def test_a_cpu_without_amx_keeps_the_native_build():
    assert isa_options(SAPPHIRE_RAPIDS - {"__AMX_TILE__", "__AMX_INT8__", "__AMX_BF16__"}) == []
    assert isa_options(None) == []


def test_a_cpu_with_amx_gets_its_other_instruction_sets_and_no_amx():
    options = isa_options(SAPPHIRE_RAPIDS)
    assert options[0] == "-DGGML_NATIVE=OFF"
    assert {"-DGGML_AVX2=ON", "-DGGML_AVX512=ON", "-DGGML_AVX512_BF16=ON", "-DGGML_AVX_VNNI=ON", "-DGGML_FMA=ON"} <= set(options)
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(options)


def test_avx512_needs_all_five_subsets():
    options = isa_options(SAPPHIRE_RAPIDS - {"__AVX512BW__"})
    assert "-DGGML_AVX512=OFF" in options and "-DGGML_AVX512_VNNI=ON" in options


def test_a_missing_compiler_asks_nothing():
    assert native_macros("no-such-compiler-experts-first") is None


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 macros")
def test_the_native_target_is_read_from_the_compiler():
    macros = native_macros()
    assert macros is not None and "__x86_64__" in macros and "__SSE2__" in macros
