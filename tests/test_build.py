"""Building the real pinned llama.cpp: the CPU variants, patched and upstream, and running them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from builder.__main__ import main
from builder.build import (BUILD_CHOICES, TOOLS, BuildOptions, cmake_options, configure, fork_commit, make_manifest, prepare_source,
                           recorded_options, work_dir)
from builder.fetch import SourceTree
from builder.patches import read_series
from builder.pin import load_pin
from builder.settings import Settings
from builder.variants import Variant


def _tree(tmp_path: Path) -> SourceTree:
    return SourceTree(tmp_path, load_pin(), "test", load_pin().tree_digest, True, ())


def test_the_build_folder_gets_only_the_verified_files(small_tree, tmp_path):
    (small_tree / ".git").mkdir()
    (small_tree / ".git" / "config").write_text("[core]\n")
    (small_tree / "app").mkdir()
    (small_tree / "app" / "CMakeLists.txt").write_text("message(FATAL_ERROR unverified)\n")
    verified = ("CMakeLists.txt", "ggml/CMakeLists.txt", "ggml/src/ggml.c", "src/llama.cpp")
    tree = SourceTree(small_tree, load_pin(), "test", "sha256:x", True, verified)
    dest = tmp_path / "work" / "src"
    dest.parent.mkdir()
    prepare_source(tree, [], dest, tmp_path / "build.log")
    assert tuple(sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())) == verified


def test_manifest_names_the_verified_paths(small_tree, tmp_path):
    tree = SourceTree(small_tree, load_pin(), "test", load_pin().tree_digest, True, ("CMakeLists.txt", "src/llama.cpp"))
    manifest = make_manifest(tree, Variant(None), [], [], BuildOptions(), 1.0, "version: 1")
    assert manifest["source"]["verified_paths"] == list(load_pin().tree_paths)
    assert manifest["source"]["files"] == 2 and manifest["source"]["verified"] is True


def test_cmake_options_never_reach_the_network_and_name_the_fork(tmp_path):
    series = read_series()
    options = cmake_options(_tree(tmp_path), Variant("75"), series, BuildOptions())
    assert "-DLLAMA_USE_PREBUILT_UI=OFF" in options and "-DLLAMA_BUILD_UI=OFF" in options
    assert "-DLLAMA_BUILD_APP=OFF" in options  # app/ is not digested, so it is not built
    assert "-DCMAKE_CUDA_ARCHITECTURES=75" in options and "-DGGML_CUDA=ON" in options
    assert f"-DLLAMA_BUILD_COMMIT={fork_commit(Variant('75'), series)}" in options
    cpu = cmake_options(_tree(tmp_path), Variant(None, "upstream"), [], BuildOptions(defines=("GGML_NATIVE=OFF",)))
    assert not any("CUDA_ARCH" in o for o in cpu)
    toolkit = BuildOptions(defines=("GGML_NATIVE=OFF",), cuda_defines=("CUDA_cublas_LIBRARY=/w/libcublas.so.13",))
    cuda = cmake_options(_tree(tmp_path), Variant("75"), series, toolkit)
    assert cuda.index("-DCUDA_cublas_LIBRARY=/w/libcublas.so.13") < len(cuda) - 1 and cuda[-1] == "-DGGML_NATIVE=OFF"  # the user's last
    assert not any("cublas" in o for o in cmake_options(_tree(tmp_path), Variant(None), series, toolkit))
    assert "-DLLAMA_BUILD_COMMIT=upstream" in cpu and cpu[-1] == "-DGGML_NATIVE=OFF"


def test_fork_commit_changes_with_the_series(tmp_path):
    from builder.patches import Patch

    a = tmp_path / "a.patch"
    a.write_text("one\n")
    first = fork_commit(Variant(None), [Patch(a)])
    assert re.fullmatch(r"experts-first-\d+\.\d+\.\d+\+[0-9a-f]{8}", first)
    assert fork_commit(Variant(None, "baseline"), [Patch(a)]).startswith("upstream+experts-first-baseline-")
    a.write_text("two\n")
    assert fork_commit(Variant(None), [Patch(a)]) != first


def _cmake_cache(build_dir: Path) -> str:
    return (build_dir / "CMakeCache.txt").read_text()


def test_changed_options_configure_afresh(tmp_path):
    """A definition given once and dropped later must not stay in CMakeCache.txt."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.14)\nproject(tiny NONE)\n")
    build_dir, log_file = tmp_path / "build", tmp_path / "build.log"
    configure(src, build_dir, ["-DEF_PROBE=1"], log_file)
    assert "EF_PROBE:UNINITIALIZED=1" in _cmake_cache(build_dir)
    configure(src, build_dir, [], log_file)
    assert "EF_PROBE" not in _cmake_cache(build_dir)
    runs = log_file.read_text().count("$ ")
    configure(src, build_dir, [], log_file)  # same options: CMake does not run again
    assert log_file.read_text().count("$ ") == runs


def test_test_ops_and_regress_rebuild_a_variant_with_its_recorded_options(tmp_path):
    settings = Settings(load_pin().path, tmp_path, None, None, None, True)
    fresh = recorded_options(settings, Variant(None), jobs=3)
    assert (fresh.build_type, fresh.defines, fresh.jobs) == ("Release", (), 3)
    work = work_dir(settings, Variant(None))
    work.mkdir(parents=True)
    (work / BUILD_CHOICES).write_text(json.dumps({"build_type": "RelWithDebInfo", "defines": ["GGML_NATIVE=OFF"]}))
    kept = recorded_options(settings, Variant(None), dist_dir=tmp_path / "dist")
    assert (kept.build_type, kept.defines, kept.dist_dir) == ("RelWithDebInfo", ("GGML_NATIVE=OFF",), tmp_path / "dist")
    assert recorded_options(settings, Variant(None, "upstream")).defines == ()  # per variant


def test_bad_define_is_refused(capsys):
    assert main(["build", "--cpu", "--define", "GGML_NATIVE"]) == 2
    assert "lacks '='" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["cpu", "upstream-cpu"])
def test_dist_holds_runnable_tools_and_manifest(cpu_builds, variant, real_pin):
    out = cpu_builds / variant
    for tool in TOOLS:
        assert (out / "bin" / tool).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variant"] == variant
    assert manifest["rpc_server"] == "bin/ggml-rpc-server" and (out / manifest["rpc_server"]).is_file()
    assert manifest["pin"]["tag"] == real_pin.tag and manifest["source"]["digest"] == real_pin.tree_digest
    assert manifest["source"]["verified"] is True and manifest["source"]["verified_paths"] == list(real_pin.tree_paths)
    assert manifest["flavor"] == ("fork" if variant == "cpu" else "upstream")
    assert [p["name"] for p in manifest["patches"]] == ([p.name for p in read_series()] if variant == "cpu" else [])
    assert manifest["compilers"]["c++"].startswith(("c++", "g++", "clang"))
    assert manifest["build_seconds"] > 0
    version = subprocess.run([out / "bin" / "llama-server", "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0
    expected = "experts-first-" if variant == "cpu" else "commit upstream"
    assert expected in version.stdout + version.stderr
    assert f"build {real_pin.build_number}" in version.stdout + version.stderr


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["cpu", "upstream-cpu"])
def test_built_cli_generates_with_a_small_moe_model(cpu_builds, tiny_moe, variant):
    proc = subprocess.run(
        [cpu_builds / variant / "bin" / "llama-cli", "-m", tiny_moe, "-p", "hello", "-n", "8", "-st",
         "--temp", "0", "-t", "2", "--no-warmup"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert re.search(r"Generation: [\d.]+ t/s", output), output[-3000:]


@pytest.mark.slow
def test_rebuild_reuses_the_build_folder(cpu_builds, shared_cache):
    assert main(["build", "--cpu", "--dist", str(cpu_builds), "--cache-dir", str(shared_cache)]) == 0
    settings = Settings(load_pin().path, shared_cache, None, None, None, True)
    log = (work_dir(settings, Variant(None)) / "build.log").read_text()
    assert "Configuring done" not in log
    assert not re.search(r"Building (C|CXX) object", log)
    # only verified files reach the build folder: app/ (not digested) is neither copied nor configured
    src = work_dir(settings, Variant(None)) / "src"
    assert not [p for p in (src / "app").rglob("*") if p.is_file()] and not (src / ".experts-first-source.json").exists()
