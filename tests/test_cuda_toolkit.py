"""The CUDA toolkit check before CMake runs, and cuBLAS from the wheel, on made-up toolkit folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder import cuda_toolkit
from builder.__main__ import main
from builder.build import cuda_definitions
from builder.cuda_toolkit import find_toolkit
from builder.cuda_wheels import wheel_folder, wheel_requirement
from builder.errors import BuildError, FetchError
from builder.pin import load_pin
from builder.settings import Settings

FAKE_NVCC = """#!/bin/sh
case "$1" in
  --version) echo "Cuda compilation tools, release 13.0, V13.0.88" ;;
  --list-gpu-code) echo "sm_75 sm_80 sm_90" ;;
  --dryrun) echo '#$ _TARGET_DIR_=' >&2; echo '#$ _TARGET_DIR_=targets/x86_64-linux' >&2; echo '#$ TOP={root}/bin/..' >&2 ;;
esac
"""


@pytest.fixture
def toolkit(tmp_path, monkeypatch) -> Path:
    """A toolkit folder with nvcc, cudart and the driver's link stub, but no cuBLAS; CMake's nvcc ($CUDACXX).
    The system folders are left out of the search, so the machine's own libraries do not count."""
    root = tmp_path / "cuda-13.0"
    for rel in ("targets/x86_64-linux/include/cuda_runtime.h", "targets/x86_64-linux/lib/libcudart.so",
                "targets/x86_64-linux/lib/stubs/libcuda.so"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    nvcc = root / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text(FAKE_NVCC.format(root=root))
    nvcc.chmod(0o755)
    monkeypatch.setenv("CUDACXX", str(nvcc))
    monkeypatch.setattr(cuda_toolkit, "SYSTEM_INCLUDE_DIRS", ())
    monkeypatch.setattr(cuda_toolkit, "SYSTEM_LIB_DIRS", ())
    return root


def _settings(cache: Path) -> Settings:
    return Settings(load_pin().path, cache, None, None, None, True)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_find_toolkit_reads_nvcc(toolkit):
    found = find_toolkit(str(toolkit / "bin" / "nvcc"))
    assert found.root == toolkit and found.version == (13, 0)
    assert toolkit / "targets/x86_64-linux/include" in found.include_dirs
    assert toolkit / "targets/x86_64-linux/lib/stubs" in found.lib_dirs


def test_build_without_cublas_names_it_and_the_wheel_before_fetching(toolkit, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["build", "--cuda-arch", "75", "--cache-dir", str(cache)]) == BuildError.exit_code
    err = capsys.readouterr().err
    assert f"error: the CUDA 13.0 toolkit at {toolkit} lacks what the CUDA backend needs" in err
    assert "cuBLAS: no cublas_v2.h, libcublas.so, libcublasLt.so" in err
    assert "cudart" not in err.split("hint:")[0] and "libcuda.so" not in err  # those are there
    assert "hint: for cuBLAS: pass --cuda-libs-from-wheels" in err
    assert not (cache / "src").exists()  # stopped before fetching, let alone CMake


@pytest.mark.parametrize("args, driver_needed", [
    ([], True),
    (["-D", "GGML_CUDA_NO_VMM=ON"], False),
    (["-D", "GGML_CUDA_NO_VMM=ON", "-D", "GGML_CUDA_NO_VMM=OFF"], True),
    (["--compile-only-touched"], False),
])
def test_driver_library_is_needed_only_to_link_with_vmm(toolkit, tmp_path, capsys, args, driver_needed):
    (toolkit / "targets/x86_64-linux/lib/stubs/libcuda.so").unlink()
    assert main(["build", "--cuda-arch", "75", "--cache-dir", str(tmp_path / "cache"), *args]) == BuildError.exit_code
    err = capsys.readouterr().err
    assert ("the CUDA driver library (libcuda.so): no libcuda.so" in err) == driver_needed
    assert "cuBLAS: no cublas_v2.h" in err


def test_missing_cudart_is_named(toolkit, tmp_path):
    (toolkit / "targets/x86_64-linux/lib/libcudart.so").unlink()
    with pytest.raises(BuildError, match=r"the CUDA runtime \(cudart\): no libcudart.so") as err:
        cuda_definitions(_settings(tmp_path / "cache"), True, True, [])
    assert "cuda-cudart-dev" in err.value.hint


def _installed_wheel(cache: Path, files: tuple[str, ...]) -> Path:
    """What pip leaves in the cache for the nvidia-cublas wheel (empty files)."""
    root = wheel_folder(cache, (13, 0)) / "nvidia" / "cu13"
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    return root


def test_cublas_from_the_cached_wheel_points_cmake_at_it_and_leaves_the_toolkit_alone(toolkit, tmp_path):
    cache = tmp_path / "cache"
    root = _installed_wheel(cache, ("include/cublas_v2.h", "lib/libcublas.so.13", "lib/libcublasLt.so.13"))
    before = _files(toolkit)
    defines = cuda_definitions(_settings(cache), True, True, [])
    assert defines == (f"CUDA_cublas_LIBRARY={root}/lib/libcublas.so.13", f"CUDA_cublasLt_LIBRARY={root}/lib/libcublasLt.so.13",
                       f"CMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES={root}/include")
    assert _files(toolkit) == before
    compile_only = cuda_definitions(_settings(cache), True, False, [])
    assert compile_only[:3] == defines and compile_only[3].startswith(f"CUDA_cuda_driver_LIBRARY={cache}/")


def test_incomplete_wheel_folder_is_named(toolkit, tmp_path):
    _installed_wheel(tmp_path / "cache", ("include/cublas_v2.h", "lib/libcublas.so.13"))
    with pytest.raises(FetchError, match=r"has no libcublasLt.so.13"):
        cuda_definitions(_settings(tmp_path / "cache"), True, True, [])


@pytest.mark.parametrize("version, requirement", [((13, 0), "nvidia-cublas>=13.0,<13.1"), ((13, 2), "nvidia-cublas>=13.0,<13.3")])
def test_wheel_is_never_newer_than_the_toolkit(version, requirement):
    assert wheel_requirement(version) == requirement
