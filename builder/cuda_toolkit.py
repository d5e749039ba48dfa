"""What ggml-cuda needs from the CUDA toolkit (cudart, cuBLAS, the driver library), checked before CMake runs.

A toolkit without cuBLAS otherwise fails late, in CMake's generate step ("An ALIAS target is
missing" for CUDA::cublas). The `nvidia-cublas` wheel can supply cuBLAS (`cuda_wheels.py`);
CMake is then pointed at it through its own cache variables, never by writing into the toolkit.
"""

from __future__ import annotations

import re
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError, UsageError

# `nvcc --dryrun` prints the toolkit it belongs to, as CMake's FindCUDAToolkit reads it
TOP_RE = re.compile(r"^#\$ TOP=(.+)$", re.M)
TARGET_DIR_RE = re.compile(r"^#\$ _TARGET_DIR_=(.+)$", re.M)
RELEASE_RE = re.compile(r"release (\d+)\.(\d+)")
SYSTEM_INCLUDE_DIRS = (Path("/usr/include"),)
SYSTEM_LIB_DIRS = tuple(Path(d) for d in (f"/usr/lib/{sysconfig.get_config_var('MULTIARCH') or ''}", "/usr/lib64", "/usr/lib"))
# what the compile check names as the driver library: it never links, so no file is needed there
DRIVER_NOT_LINKED = "compile-check-links-nothing/libcuda.so"


@dataclass(frozen=True)
class Toolkit:
    """The CUDA toolkit an nvcc belongs to."""

    root: Path
    version: tuple[int, int]
    target_dir: str
    """The toolkit's per-platform folder, e.g. "targets/x86_64-linux" (empty if it has none)."""

    @property
    def include_dirs(self) -> list[Path]:
        return [self.root / "include", *([self.root / self.target_dir / "include"] if self.target_dir else [])]

    @property
    def lib_dirs(self) -> list[Path]:
        dirs = [self.root / "lib64", self.root / "lib", *([self.root / self.target_dir / "lib"] if self.target_dir else [])]
        return dirs + [d / "stubs" for d in dirs]

    @property
    def label(self) -> str:
        return f"the CUDA {self.version[0]}.{self.version[1]} toolkit at {self.root}"


@dataclass(frozen=True)
class Piece:
    """Something ggml-cuda compiles or links against, as the files CMake looks for."""

    name: str
    headers: tuple[str, ...]
    libraries: tuple[str, ...]
    how_to_get: str

    def missing(self, include_dirs: list[Path], lib_dirs: list[Path]) -> list[str]:
        """The piece's files found in none of the folders."""
        return [f for dirs, files in ((include_dirs, self.headers), (lib_dirs, self.libraries))
                for f in files if not any((d / f).exists() for d in dirs)]


CUDART = Piece("the CUDA runtime (cudart)", ("cuda_runtime.h",), ("libcudart.so",),
               "install the toolkit's runtime development files (NVIDIA's cuda-cudart-dev package)")
CUBLAS = Piece("cuBLAS", ("cublas_v2.h",), ("libcublas.so", "libcublasLt.so"),
               "pass --cuda-libs-from-wheels to use the nvidia-cublas wheel from the package index "
               "(about 420 MB, kept in the builder cache), or install the toolkit's cuBLAS (NVIDIA's libcublas-dev package)")
DRIVER = Piece("the CUDA driver library (libcuda.so)", (), ("libcuda.so",),
               "install the NVIDIA driver or the toolkit's link stub (lib64/stubs/libcuda.so, NVIDIA's cuda-driver-dev "
               "package); or build with -D GGML_CUDA_NO_VMM=ON (no CUDA virtual memory, no driver library); "
               "--compile-only-touched links nothing and does not need it")


def find_toolkit(nvcc: str) -> Toolkit:
    """The toolkit of `nvcc`, from what `nvcc --dryrun` and `nvcc --version` print."""
    try:
        dryrun = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", "/dev/null", "-o", "/dev/null"],
                                capture_output=True, text=True, timeout=60)
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"cannot run {nvcc} ({exc})", "install the CUDA toolkit and put nvcc on PATH, or build --cpu") from exc
    top, release = TOP_RE.search(dryrun.stdout + dryrun.stderr), RELEASE_RE.search(version)
    if not top or not release:
        raise UsageError(f"{nvcc} does not say where its toolkit is or which release it is",
                         "put the nvcc of a CUDA toolkit on PATH")
    target = TARGET_DIR_RE.findall(dryrun.stdout + dryrun.stderr)
    return Toolkit(Path(top.group(1).strip()).resolve(), (int(release.group(1)), int(release.group(2))),
                   target[-1].strip() if target else "")


def require_pieces(toolkit: Toolkit, pieces: list[Piece]) -> None:
    """Stop, naming each piece the toolkit (or the system folders) lacks and how to get it."""
    include_dirs = toolkit.include_dirs + list(SYSTEM_INCLUDE_DIRS)
    lib_dirs = toolkit.lib_dirs + list(SYSTEM_LIB_DIRS)
    lacking = [(p, p.missing(include_dirs, lib_dirs)) for p in pieces]
    lacking = [(p, files) for p, files in lacking if files]
    if lacking:
        raise BuildError(
            f"{toolkit.label} lacks what the CUDA backend needs:\n"
            + "\n".join(f"  {p.name}: no {', '.join(files)}" for p, files in lacking)
            + f"\n  (looked in {', '.join(str(d) for d in include_dirs + lib_dirs if d.is_dir())})",
            "; ".join(f"for {p.name}: {p.how_to_get}" for p, _ in lacking),
        )


def driver_not_linked(cache_dir: Path) -> str:
    """The CMake definition that lets a build folder which only compiles do without the driver library."""
    return f"CUDA_cuda_driver_LIBRARY={cache_dir / DRIVER_NOT_LINKED}"
