"""`wheel`: the console scripts' start-up checks, the generated project, and (slow) a real CPU wheel installed
into a fresh venv, run and uninstalled, with its contents checked file by file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from builder.__main__ import main
from builder.build import TOOLS, BuildOptions, make_manifest, series_hash, work_dir
from builder.cuda_toolkit import find_toolkit
from builder.elf import elf_needs, file_needs, is_elf
from builder.errors import BuildError
from builder.fetch import SourceTree
from builder.patches import read_series
from builder.pin import load_pin
from builder.settings import Settings
from builder.variants import Variant, nvcc_command
from builder.wheel import (PACKAGE, TEMPLATE_DIR, Needs, check_wheel, describe, portability_warnings, pyproject, script_name,
                           wheel_section)

# what the CPU wheel may take from the system: glibc, the C++ and GCC runtimes, OpenMP (ggml-cpu) and
# OpenSSL (llama-common's downloads); everything else must be in the wheel
CPU_SYSTEM_LIBRARIES = {"ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1",
                        "libgomp.so.1", "libssl.so.3", "libcrypto.so.3"}


def package_with(tmp_path: Path, manifest: dict, tool_script: str | None = None) -> Path:
    """The wheel's Python package (from the template) with `manifest`, and optionally a stand-in llama-cli."""
    root = tmp_path / "site"
    shutil.copytree(TEMPLATE_DIR / PACKAGE, root / PACKAGE)
    (root / PACKAGE / "manifest.json").write_text(json.dumps(manifest))
    if tool_script:
        tool = root / PACKAGE / "bin" / "llama-cli"
        tool.parent.mkdir()
        tool.write_text(tool_script)
        tool.chmod(0o755)
    return root


def launch_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    code = f"import sys; sys.argv[1:] = {list(args)!r}; from {PACKAGE}._launch import cli; cli()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(root)})


def cpu_manifest(system_libraries: dict[str, str]) -> dict:
    return {"tools": {"llama-cli": "bin/llama-cli"}, "cuda_archs": [],
            "wheel": {"cuda_major": None, "system_libraries": system_libraries}}


def test_console_script_runs_the_tool_with_its_arguments(tmp_path):
    root = package_with(tmp_path, cpu_manifest({"libc.so.6": "install glibc"}), '#!/bin/sh\necho "ran $(basename "$0") $*"\n')
    proc = launch_cli(root, "-m", "model.gguf", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran llama-cli -m model.gguf --version\n"


def test_console_script_names_a_missing_system_library_in_one_line(tmp_path):
    hint = "install the package of your Linux distribution that provides libexperts-first-absent.so.7"
    root = package_with(tmp_path, cpu_manifest({"libc.so.6": "-", "libexperts-first-absent.so.7": hint}), "#!/bin/sh\necho ran\n")
    proc = launch_cli(root)
    assert proc.returncode == 127 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("experts-first-cli: libexperts-first-absent.so.7 does not load")
    assert proc.stderr.rstrip().endswith(hint)


def test_cuda_wheel_without_a_matching_driver_explains_in_one_line(tmp_path):
    # no driver supports CUDA 99: a machine without a driver and one with any driver both refuse, in one line
    manifest = {"tools": {"llama-cli": "bin/llama-cli"}, "cuda_archs": ["75"],
                "wheel": {"cuda_major": 99, "system_libraries": {"libcudart.so.99": "install the CUDA 99 runtime"}}}
    proc = launch_cli(package_with(tmp_path, manifest, "#!/bin/sh\necho ran\n"))
    assert proc.returncode == 127 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("experts-first-cli: ") and "sm_75 with CUDA 99" in line
    assert re.search(r"no NVIDIA driver \(libcuda\.so\.1 does not load\)|the NVIDIA driver supports CUDA up to \d+\.\d+", line)


def test_generated_pyproject_is_toml_with_a_script_per_tool():
    description = 'pin "b11549"\n| patch | `0001` |\\ back\\slash'
    text = pyproject("experts-first-llama-cpu", "0.1.0+b11549.1a2b3c4d", "summary", description,
                     {"cmake.args": ["-DA=$ORIGIN", "-DB=x;y"], "build-dir": "/tmp/b"})
    parsed = tomllib.loads(text)
    assert parsed["project"]["readme"]["text"] == description
    assert parsed["tool"]["scikit-build"]["cmake"]["args"] == ["-DA=$ORIGIN", "-DB=x;y"]
    scripts = parsed["project"]["scripts"]
    assert set(scripts) == {script_name(t) for t in TOOLS} == {f"experts-first-{t}" for t in ("cli", "server", "completion", "perplexity", "bench")}
    launch = (TEMPLATE_DIR / PACKAGE / "_launch.py").read_text()
    for target in scripts.values():  # each entry point is a function of the package's _launch module
        module, function = target.split(":")
        assert module == f"{PACKAGE}._launch" and f"\ndef {function}() -> None:" in launch


def test_wheel_refuses_a_bad_define(capsys):
    assert main(["wheel", "--cpu", "--define", "GGML_NATIVE"]) == 2
    assert "lacks '='" in capsys.readouterr().err


def test_check_wheel_names_each_problem(tmp_path):
    # a real ELF file (true(1), no RPATH $ORIGIN) as the only tool, a file outside the package, the other tools missing
    elf = Path(shutil.which("true")).resolve()
    wheel = tmp_path / "experts_first_llama_cpu-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(elf, f"{PACKAGE}/bin/llama-cli")
        zf.writestr("stray/file.txt", "x")
        zf.writestr("experts_first_llama_cpu-0.1.0.dist-info/METADATA", "")
    manifest = {"tools": {t: f"bin/{t}" for t in TOOLS}, "wheel": {"system_libraries": {}}}
    with pytest.raises(BuildError) as caught:
        check_wheel(wheel, manifest)
    message = caught.value.message
    assert "stray/file.txt: outside the package" in message and "dist-info" not in message
    assert f"{PACKAGE}/bin/llama-cli: RPATH" in message and "not $ORIGIN" in message
    needed = elf_needs(elf.read_bytes()).needed
    assert needed and all(f"needs {lib}, neither in the wheel nor a system library" in message for lib in needed)
    assert all(f"{PACKAGE}/bin/{t}: missing" in message for t in TOOLS if t != "llama-cli")


@pytest.mark.cuda
def test_cuda_wheel_names_its_arch_and_cuda_major(tmp_path):
    if not shutil.which("nvcc"):
        pytest.skip("nvcc is not installed")
    pin = load_pin()
    tree, variant, series = SourceTree(tmp_path, pin, "test", pin.tree_digest, True, ()), Variant("75"), read_series()
    needs = Needs({"llama-cli": file_needs(Path(shutil.which("true")).resolve())},
                  ("libc.so.6", "libcuda.so.1", "libcudart.so.13", "libnccl.so.2"))
    manifest = make_manifest(tree, variant, series, ["-DGGML_CUDA=ON"], BuildOptions(), 1.0, "version: test")
    manifest["wheel"] = wheel_section(tree, variant, series, needs, ("GGML_NATIVE=OFF",))
    major = find_toolkit(nvcc_command()).version[0]
    assert manifest["wheel"]["name"] == "experts-first-llama-cuda-sm75"
    assert manifest["wheel"]["version"] == f"0.1.0+b{pin.build_number}.{series_hash(series)}.cu{major}"
    assert manifest["wheel"]["cuda_major"] == major
    assert f"CUDA {major} runtime" in manifest["wheel"]["system_libraries"]["libcudart.so.13"]
    assert "-D GGML_CUDA_NCCL=OFF" in manifest["wheel"]["system_libraries"]["libnccl.so.2"]
    assert manifest["wheel"]["built_for_this_cpu"] is False
    summary, description = describe(manifest)
    assert summary == f"llama.cpp {pin.tag} with {len(series)} patches of the experts-first series; CUDA {major}, sm_75"
    assert f"- CUDA: arch 75, CUDA major {major}" in description
    assert "- CPU code: portable (GGML_NATIVE=OFF)" in description


@pytest.mark.parametrize("variant, defines, warned", [
    (Variant(None), (), ["GGML_NATIVE"]),
    (Variant(None), ("GGML_NATIVE=OFF",), []),
    (Variant(None), ("GGML_NATIVE=OFF", "GGML_NATIVE=ON"), ["GGML_NATIVE"]),  # the last definition counts, as in CMake
    (Variant("75"), (), ["GGML_NATIVE", "GGML_CUDA_NCCL"]),
    (Variant("75"), ("GGML_CUDA_NCCL=OFF",), ["GGML_NATIVE"]),
    (Variant("75"), ("GGML_NATIVE=0", "GGML_CUDA_NCCL=no"), []),
    (Variant("75"), ("GGML_NATIVE:BOOL=OFF", "GGML_CUDA_NCCL:BOOL=OFF"), []),  # CMake's typed form
])
def test_wheel_warns_of_what_ties_it_to_the_building_machine(variant, defines, warned, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    warnings = portability_warnings(variant, defines)
    assert [w.split("(")[1].split(",")[0] for w in warnings] == warned
    assert all(f"-D {option}=OFF" in w for w, option in zip(warnings, warned))


def test_a_reproducible_build_is_not_native_unless_asked(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # ggml's CMakeLists.txt then defaults GGML_NATIVE to OFF
    assert portability_warnings(Variant(None), ()) == []
    assert len(portability_warnings(Variant(None), ("GGML_NATIVE=ON",))) == 1


@pytest.fixture(scope="session")
def cpu_wheel(shared_cache, tmp_path_factory) -> Path:
    """`wheel --cpu` of the real pinned tree."""
    out = tmp_path_factory.mktemp("wheels")
    assert main(["wheel", "--cpu", "--out", str(out), "--cache-dir", str(shared_cache)]) == 0
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def cpu_work_dir(cache: Path) -> Path:
    return work_dir(Settings(load_pin().path, cache, None, None, None, True), Variant(None))


def wheel_manifest(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read(f"{PACKAGE}/manifest.json"))


@pytest.mark.slow
def test_cpu_wheel_installs_runs_and_uninstalls(cpu_wheel, tiny_moe, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, scripts = env_dir / "bin" / "python", env_dir / "bin"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-index", "--no-deps", str(cpu_wheel)], check=True, timeout=300)

    version = wheel_manifest(cpu_wheel)["version"]
    assert version.startswith("version: ") and "commit experts-first-" in version
    for tool in TOOLS:
        proc = subprocess.run([scripts / script_name(tool), "--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and version in proc.stdout + proc.stderr, (tool, proc.stdout + proc.stderr)

    proc = subprocess.run([scripts / "experts-first-completion", "-m", tiny_moe, "-p", "hello", "-n", "8", "--temp", "0",
                           "-t", "2", "--no-warmup", "-no-cnv"], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert re.search(r"eval time = .* / +8 runs", proc.stderr), proc.stderr[-3000:]

    where = subprocess.run([python, "-c", f"import {PACKAGE} as p; print(p.tool('server')); print(p.manifest()['variant'])"],
                           capture_output=True, text=True, check=True, timeout=60).stdout.split()
    site_package = Path(where[0]).parent.parent
    assert site_package.is_relative_to(env_dir) and where[1] == "cpu"

    subprocess.run([*pip, "uninstall", "-y", "experts-first-llama-cpu"], check=True, timeout=120)
    assert not site_package.exists()
    assert not list(scripts.glob("experts-first-*"))
    assert not list(site_package.parent.glob("experts_first_llama*"))


@pytest.mark.slow
def test_cpu_wheel_holds_only_its_package_and_what_its_binaries_need(cpu_wheel, shared_cache, real_pin):
    manifest = wheel_manifest(cpu_wheel)
    work = cpu_work_dir(shared_cache)
    with zipfile.ZipFile(cpu_wheel) as zf:
        names = zf.namelist()
        contents = {n: zf.read(n) for n in names}
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        tag = re.search(r"^Tag: (.+)$", zf.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode(), re.M).group(1)

    dist_info = {n.split("/")[0] for n in names if n.split("/")[0] != PACKAGE}
    assert dist_info == {f"experts_first_llama_cpu-{manifest['wheel']['version']}.dist-info"}
    binaries = {n: elf_needs(data) for n, data in contents.items() if is_elf(data)}
    shipped = {Path(n).name for n in binaries}
    assert {f"{PACKAGE}/bin/{t}" for t in TOOLS} <= set(binaries)
    assert {"libllama.so.0", "libggml.so.0", "libggml-base.so.0", "libggml-cpu.so.0"} <= shipped

    needed_from_system = set()
    for name, needs in binaries.items():
        assert needs.search_path == ("$ORIGIN",), name
        needed_from_system |= set(needs.needed) - shipped
    assert needed_from_system == CPU_SYSTEM_LIBRARIES == set(manifest["wheel"]["system_libraries"])

    # no path of the builder's cache (source, build folder, downloads), except the source file names of the
    # unity-built model sources that GGML_ASSERT's __FILE__ bakes into libllama (see docs/wheels.md)
    cache = str(shared_cache).encode()
    for name, data in contents.items():
        found = set(re.findall(re.escape(cache) + rb"[^\0\s]*", data))
        assert all(re.fullmatch(re.escape(str(work / "src").encode()) + rb"/src/models/[\w.-]+\.cpp", f) for f in found), (name, found)
        assert not found or name == f"{PACKAGE}/bin/libllama.so.0"

    glibc = max(n.glibc for n in binaries.values())
    assert tag == f"py3-none-manylinux_{glibc[0]}_{glibc[1]}_x86_64" == f"py3-none-{manifest['wheel']['platform_tag']}"
    assert cpu_wheel.name == f"experts_first_llama_cpu-{manifest['wheel']['version']}-{tag}.whl"
    assert re.fullmatch(rf"0\.1\.0\+b{real_pin.build_number}\.[0-9a-f]{{8}}", manifest["wheel"]["version"])
    assert f"Summary: llama.cpp {real_pin.tag} with {len(manifest['patches'])} patches of the experts-first series; CPU only" in metadata
    # built with build's defaults: for this machine's CPU, and the wheel says so
    assert manifest["wheel"]["built_for_this_cpu"] is True
    assert "- CPU code: for the CPU of the machine that built it (GGML_NATIVE=ON; on a CPU with AMX, its other instruction sets)" in metadata
    for patch in manifest["patches"]:
        assert f"| `{patch['name']}` | `{patch['sha256']}` |" in metadata
    assert f"tree digest `{real_pin.tree_digest}`" in metadata


@pytest.mark.slow
def test_a_wheel_after_a_build_compiles_nothing_and_a_second_links_nothing(cpu_wheel, shared_cache, tmp_path):
    log = cpu_work_dir(shared_cache) / "build.log"
    wheel = ["wheel", "--cpu", "--out", str(tmp_path / "wheels"), "--cache-dir", str(shared_cache)]
    assert main(["build", "--cpu", "--dist", str(tmp_path / "dist"), "--cache-dir", str(shared_cache)]) == 0
    assert main(wheel) == 0
    assert "Installing project into wheel" in log.read_text()
    assert not re.search(r"Building (C|CXX) object", log.read_text())  # the build's objects: only relinked
    assert main(wheel) == 0
    assert "Installing project into wheel" in log.read_text()
    assert not re.search(r"Building (C|CXX) object|Linking", log.read_text())
    assert [p.name for p in (tmp_path / "wheels").glob("*.whl")] == [cpu_wheel.name]
