"""The CPU instruction sets a build compiles for: the native ones, less AMX.

ggml's AMX kernels crash on some machines whose CPU reports AMX (upstream llama.cpp issue 20824, a segfault in
ggml_backend_amx_mul_mat on Sapphire Rapids, open without a fix; seen here on the development machine, SIGSEGV and
SIGILL in every tool that loads a Q4_K/Q8_0 model without --no-repack). AMX only serves CPU prompt processing, and its
buffers cannot give hot expert copies anyway. So where the compiler's native target has AMX, the build spells out the
native target's other instruction sets as ggml's options instead of GGML_NATIVE (which would turn AMX on); elsewhere
the build stays native."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

# ggml's CMake options for x86 (ggml/src/ggml-cpu/CMakeLists.txt, GGML_NATIVE=OFF) and the macros -march=native sets
# for each; GGML_AVX512 stands for the five AVX-512 subsets it turns on together
GGML_ISA_MACROS = {
    "GGML_SSE42": ("__SSE4_2__",),
    "GGML_AVX": ("__AVX__",),
    "GGML_AVX2": ("__AVX2__",),
    "GGML_BMI2": ("__BMI2__",),
    "GGML_FMA": ("__FMA__",),
    "GGML_F16C": ("__F16C__",),
    "GGML_AVX_VNNI": ("__AVXVNNI__",),
    "GGML_AVX512": ("__AVX512F__", "__AVX512CD__", "__AVX512VL__", "__AVX512DQ__", "__AVX512BW__"),
    "GGML_AVX512_VBMI": ("__AVX512VBMI__",),
    "GGML_AVX512_VNNI": ("__AVX512VNNI__",),
    "GGML_AVX512_BF16": ("__AVX512BF16__",),
}
AMX_MACROS = ("__AMX_TILE__", "__AMX_INT8__", "__AMX_BF16__")


def native_macros(compiler: str | None = None) -> set[str] | None:
    """The macros the C compiler defines for -march=native, or None if there is no compiler to ask."""
    cc = compiler or os.environ.get("CC") or "cc"
    if not shutil.which(cc):
        return None
    proc = subprocess.run([cc, "-march=native", "-dM", "-E", "-x", "c", os.devnull], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return None
    return set(re.findall(r"^#define (\w+) ", proc.stdout, re.MULTILINE))


def isa_options(macros: set[str] | None) -> list[str]:
    """CMake options for a native build without AMX: none where the native target has no AMX (GGML_NATIVE stays on),
    else GGML_NATIVE=OFF with each of ggml's instruction set options on or off as the native target has it."""
    if not macros or not any(m in macros for m in AMX_MACROS):
        return []
    options = ["-DGGML_NATIVE=OFF"]
    for option, needs in GGML_ISA_MACROS.items():
        options.append(f"-D{option}={'ON' if all(m in macros for m in needs) else 'OFF'}")
    return options + ["-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
