"""cuBLAS from the `nvidia-cublas` wheel, for a CUDA toolkit that lacks it (`build --cuda-libs-from-wheels`).

pip installs the wheel once into the builder cache (`cuda-libs/nvidia-cublas-<major>.<minor>/`); a
build then hands its headers and libraries to CMake through CMake's own cache variables. Nothing
is written into the toolkit's folders.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from . import log
from .cuda_toolkit import Piece, Toolkit
from .errors import FetchError
from .run import run

WHEEL = "nvidia-cublas"


def wheel_requirement(version: tuple[int, int]) -> str:
    """The newest cuBLAS of the toolkit's major release that is not newer than the toolkit,
    so that its headers use only what the toolkit's headers declare."""
    major, minor = version
    return f"{WHEEL}>={major}.0,<{major}.{minor + 1}"


def wheel_folder(cache_dir: Path, version: tuple[int, int]) -> Path:
    return cache_dir / "cuda-libs" / f"{WHEEL}-{version[0]}.{version[1]}"


def _install(requirement: str, dest: Path, index_url: str | None) -> None:
    """pip-install the wheel into `dest`, which appears only once the install is complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.step(f"installing {requirement} into {dest} (about 420 MB, once)")
    index = ["--index-url", index_url] if index_url else []
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".installing-") as tmp:
        run([sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary", ":all:", "--no-cache-dir",
             "--target", tmp, *index, requirement], error=FetchError,
            hint="the wheel comes from the package index (see --index-url); or install the toolkit's cuBLAS")
        Path(tmp).rename(dest)


def cublas_from_wheel(toolkit: Toolkit, cache_dir: Path, index_url: str | None) -> list[str]:
    """CMake definitions that take cuBLAS from the wheel, installed into the cache if it is not there yet."""
    folder = wheel_folder(cache_dir, toolkit.version)
    if not folder.exists():
        _install(wheel_requirement(toolkit.version), folder, index_url)
    major = toolkit.version[0]
    root = folder / "nvidia" / f"cu{major}"  # the wheels' layout since CUDA 13
    libraries = {name: f"lib{name}.so.{major}" for name in ("cublas", "cublasLt")}
    missing = Piece(WHEEL, ("cublas_v2.h",), tuple(libraries.values()), "").missing([root / "include"], [root / "lib"])
    if missing:
        raise FetchError(f"the {WHEEL} wheel in {folder} has no {', '.join(missing)} in {root}",
                         f"delete {folder} to install it again, or install the toolkit's cuBLAS")
    log.info(f"  cuBLAS from the {WHEEL} wheel: {root}")
    return [*(f"CUDA_{name}_LIBRARY={root / 'lib' / file}" for name, file in libraries.items()),
            f"CMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES={root / 'include'}"]
