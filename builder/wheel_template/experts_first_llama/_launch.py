"""The console scripts (experts-first-cli, -server, -completion, -perplexity, -bench): check that the libraries
the tools take from the system load, then replace this process with the tool. A missing NVIDIA driver or CUDA
runtime is then one line naming it, not the dynamic loader's error."""

from __future__ import annotations

import ctypes
import os
import sys

from . import manifest, tool

DRIVER_LIBRARY = "libcuda.so.1"


def unloadable(library: str) -> str | None:
    """Why `library` does not load through the dynamic loader, or None if it loads."""
    try:
        ctypes.CDLL(library)
    except OSError as exc:
        return str(exc)
    return None


def driver_cuda_version() -> tuple[int, int]:
    """The newest CUDA the installed driver supports, as cuDriverGetVersion reports it."""
    version = ctypes.c_int(0)
    ctypes.CDLL(DRIVER_LIBRARY).cuDriverGetVersion(ctypes.byref(version))
    return version.value // 1000, version.value % 1000 // 10


def runtime_problem(build: dict) -> str | None:
    """What keeps the tools from starting on this machine, in one line; None when nothing does."""
    wheel = build["wheel"]
    cuda_major = wheel["cuda_major"]
    if cuda_major:
        built_for = f"this wheel runs on NVIDIA GPUs of arch sm_{'/'.join(build['cuda_archs'])} with CUDA {cuda_major}"
        if unloadable(DRIVER_LIBRARY):
            return (f"no NVIDIA driver ({DRIVER_LIBRARY} does not load); {built_for}: install NVIDIA's driver "
                    f"for CUDA {cuda_major} or newer, or use the CPU wheel (experts-first-llama-cpu)")
        supported = driver_cuda_version()
        if supported[0] < cuda_major:
            return (f"the NVIDIA driver supports CUDA up to {supported[0]}.{supported[1]}; {built_for}: "
                    f"update the driver, or use a wheel built with CUDA {supported[0]}")
    for library, hint in wheel["system_libraries"].items():
        reason = unloadable(library)
        if reason:
            return f"{library} does not load ({reason}): {hint}"
    return None


def launch(short_name: str) -> None:
    problem = runtime_problem(manifest())
    if problem:
        print(f"experts-first-{short_name}: {problem}", file=sys.stderr)
        raise SystemExit(127)
    path = str(tool(short_name))
    os.execv(path, [path, *sys.argv[1:]])


def cli() -> None:
    launch("cli")


def server() -> None:
    launch("server")


def completion() -> None:
    launch("completion")


def perplexity() -> None:
    launch("perplexity")


def bench() -> None:
    launch("bench")
