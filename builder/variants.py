"""Build variants: which backend, which CUDA arch, and which patches.

Flavors: "fork" is the whole series; "upstream" is the pinned tree alone; "baseline" is
upstream plus only the patches marked `baseline` in the series (the routing control, and the
log's last lines flushed at exit), so that speed comparisons with upstream see the same expert
routing and print whole results; "fork-NNNN" is the series up to and with patch NNNN, to find
which patch a change of speed or output comes from.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from .errors import UsageError

ARCH_RE = re.compile(r"^(?:sm_?)?(\d{2,3}[a-z]?)$")


FLAVORS = ("fork", "upstream", "baseline")
SERIES_PREFIX_RE = re.compile(r"^fork-(\d{4})$")  # the flavor of the series up to a patch


@dataclass(frozen=True)
class Variant:
    """One build: the CPU backend alone, or CUDA for one arch; with which patches."""

    cuda_arch: str | None
    """CMake CUDA arch ("75", "90a") or None for the CPU-only build."""
    flavor: str = "fork"
    """"fork", "upstream", "baseline" or "fork-NNNN" (see the module's docstring)."""

    @property
    def name(self) -> str:
        backend = f"cuda-sm{self.cuda_arch}" if self.cuda_arch else "cpu"
        return backend if self.flavor == "fork" else f"{self.flavor}-{backend}"

    def as_flavor(self, flavor: str) -> "Variant":
        return Variant(self.cuda_arch, flavor)


def variant_from_name(name: str) -> Variant:
    """The variant a name like "cpu", "cuda-sm75" or "baseline-cuda-sm90" stands for."""
    flavor, backend = "fork", name
    for prefix in FLAVORS[1:]:
        if name.startswith(f"{prefix}-"):
            flavor, backend = prefix, name[len(prefix) + 1 :]
    if m := re.match(r"^(fork-\d{4})-(.+)$", name):
        flavor, backend = m.groups()
    if backend == "cpu":
        return Variant(None, flavor)
    if backend.startswith("cuda-"):
        return Variant(parse_arch(backend[len("cuda-") :]), flavor)
    raise UsageError(f"unknown variant {name!r}", "use cpu, cuda-sm75, upstream-cpu, baseline-cuda-sm90, fork-0010-cpu, ...")


def parse_arch(text: str) -> str:
    m = ARCH_RE.match(text.strip().lower())
    if not m:
        raise UsageError(f"CUDA arch {text!r} is not of the form 75, sm_75 or 90a", "pass the compute capability without the dot, e.g. --cuda-arch 86")
    return m.group(1)


def nvcc_command() -> str:
    """The nvcc that CMake uses: $CUDACXX, else the one on PATH."""
    return os.environ.get("CUDACXX") or shutil.which("nvcc") or "nvcc"


def nvcc_archs(nvcc: str = "nvcc") -> list[str]:
    """The real archs the installed nvcc can compile for, e.g. ["75", "80", ...]."""
    try:
        out = subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(
            f"cannot ask {nvcc} which CUDA archs it supports ({exc})",
            "install the CUDA toolkit and put nvcc on PATH (or set CUDACXX), or build --cpu",
        ) from exc
    return [code[3:] for code in out.split() if code.startswith("sm_")]


def validate_archs(archs: list[str], supported: list[str]) -> None:
    for arch in archs:
        # "90a" builds on top of "90": the base number must be supported
        if arch not in supported and arch.rstrip("abf") not in supported:
            raise UsageError(
                f"CUDA arch {arch} is not supported by the installed nvcc",
                f"use one of: {', '.join(supported)}",
            )


def local_gpu_arch() -> str | None:
    """The first local GPU's compute capability as an arch ("75"), if nvidia-smi shows one."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    return first.replace(".", "") if re.fullmatch(r"\d+\.\d+", first) else None


def select_variants(cuda_archs: list[str], cpu: bool, flavors: tuple[str, ...] = ()) -> list[Variant]:
    """Variants from the command line: every arch plus --cpu (neither: the local GPU, else CPU),
    each as the fork, followed by the same backends in the extra `flavors`."""
    archs = [parse_arch(a) for item in cuda_archs for a in item.split(",") if a.strip()]
    if archs:
        validate_archs(archs, nvcc_archs(nvcc_command()))
    if not archs and not cpu:
        local = local_gpu_arch()
        archs = [local] if local else []
        cpu = not archs
    forks = ([Variant(None)] if cpu else []) + [Variant(a) for a in dict.fromkeys(archs)]
    return forks + [v.as_flavor(f) for f in flavors for v in forks]
