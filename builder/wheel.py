"""`wheel`: one Python wheel per variant, built by scikit-build-core (the PEP 517 backend, through pip) driving CMake
on the variant's patched, verified tree in its build folder, with `build`'s CMake options plus install rules.

The wheel holds the package `experts_first_llama`: the tools and the project's shared libraries they load in
`bin/` (RPATH `$ORIGIN`), the build manifest, a module that returns both, and the console scripts
`experts-first-<tool>`, which check the libraries the tools take from the system before they start them."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import __version__, log
from .build import (TOOLS, VARIANTS_HELP, BuildOptions, VariantBuild, add_variant_arguments, ccache_env, is_on,
                    check_variant_arguments, compile_targets, configured_variant, make_manifest, options_from_args,
                    record_choices, selected_variants, series_hash, version_line)
from .cuda_toolkit import find_toolkit
from .elf import ElfNeeds, elf_needs, file_needs, is_elf
from .errors import BuildError, UsageError
from .fetch import SourceTree, ensure_source
from .patches import Patch
from .run import run
from .settings import Settings, add_source_arguments, settings_from_args
from .variants import Variant, nvcc_command

PACKAGE = "experts_first_llama"
TEMPLATE_DIR = Path(__file__).resolve().parent / "wheel_template"
INSTALL_RULES = TEMPLATE_DIR / "install-tools.cmake"
INSTALL_COMPONENT = "experts-first-wheel"
CUDA_LIBRARY_PREFIXES = ("libcuda.so.", "libcudart.so.", "libcublas.so.", "libcublasLt.so.")
NCCL_LIBRARY_PREFIX = "libnccl.so."
BACKEND_REQUIREMENT = "scikit-build-core>=0.11"


def distribution_name(variant: Variant) -> str:
    return f"experts-first-llama-{variant.name}"


def short_name(tool: str) -> str:
    """llama-cli -> cli: the console script's suffix and its function in the package's _launch module."""
    return tool.removeprefix("llama-")


def script_name(tool: str) -> str:
    return f"experts-first-{short_name(tool)}"


def wheel_cmake_options(tools: tuple[str, ...]) -> list[str]:
    """What a wheel adds to `build`'s CMake options: its install rules and the installed RPATH, no compile flag."""
    return [f"-DCMAKE_PROJECT_llama.cpp_INCLUDE={INSTALL_RULES}", f"-DEXPERTS_FIRST_WHEEL_TOOLS={';'.join(tools)}",
            "-DCMAKE_INSTALL_RPATH=$ORIGIN"]


def wheel_version(tree: SourceTree, variant: Variant, series: list[Patch], cuda_major: int | None) -> str:
    """The fork's version with the pin, the series and the CUDA major as its local label: 0.1.0+b11549.1a2b3c4d.cu13."""
    label = [f"b{tree.pin.build_number}"]
    if variant.flavor != "fork":
        label.append(variant.flavor)
    if series:
        label.append(series_hash(series))
    if cuda_major:
        label.append(f"cu{cuda_major}")
    return f"{__version__}+{'.'.join(label)}"


@dataclass(frozen=True)
class Needs:
    """What a set of tools loads: the files of the build beside them, and the rest, from the system."""

    files: dict[str, ElfNeeds]
    system: tuple[str, ...]

    @property
    def symbol_versions(self) -> dict[str, tuple[int, ...]]:
        """Per versioned library (GLIBC, GLIBCXX, ...), the newest symbol version any of the files needs."""
        newest: dict[str, tuple[int, ...]] = {}
        for file in self.files.values():
            for name, version in file.symbol_versions.items():
                newest[name] = max(newest.get(name, version), version)
        return dict(sorted(newest.items()))

    @property
    def platform_tag(self) -> str:
        glibc = max(n.glibc for n in self.files.values())
        return f"manylinux_{glibc[0]}_{glibc[1]}_{platform.machine()}"


def runtime_needs(bin_dir: Path, tools: tuple[str, ...]) -> Needs:
    """Follow the tools' NEEDED entries through the libraries found in `bin_dir`."""
    files: dict[str, ElfNeeds] = {}
    system: set[str] = set()
    pending = list(tools)
    while pending:
        name = pending.pop()
        if name in files:
            continue
        files[name] = file_needs(bin_dir / name)
        for needed in files[name].needed:
            (pending.append if (bin_dir / needed).exists() else system.add)(needed)
    return Needs(files, tuple(sorted(system)))


def system_library_hint(library: str, cuda_major: int | None) -> str:
    """What a user lacking `library` should install (the console scripts print it)."""
    if library.startswith(CUDA_LIBRARY_PREFIXES):
        return (f"the tools need NVIDIA's driver and the CUDA {cuda_major} runtime (cudart, cuBLAS): install them (NVIDIA's "
                f"CUDA {cuda_major} toolkit or its runtime packages) where the loader finds them, or put their lib folder "
                "on LD_LIBRARY_PATH")
    if library.startswith(NCCL_LIBRARY_PREFIX):
        return (f"this wheel was built where NCCL was installed, so its CUDA backend links it (used with several GPUs): install "
                f"NCCL 2 for CUDA {cuda_major} (NVIDIA's libnccl2 package, or the lib folder of the nvidia-nccl-cu{cuda_major} "
                "wheel on LD_LIBRARY_PATH), or use a wheel built with -D GGML_CUDA_NCCL=OFF")
    return f"install the package of your Linux distribution that provides {library}"


def portability_defaults() -> list[str]:
    """llama.cpp's defaults of the options that tie a build to its machine: GGML_NATIVE is ON unless SOURCE_DATE_EPOCH
    is set (ggml's CMakeLists.txt), GGML_CUDA_NCCL is ON."""
    return [f"GGML_NATIVE={'OFF' if 'SOURCE_DATE_EPOCH' in os.environ else 'ON'}", "GGML_CUDA_NCCL=ON"]


def built_for_this_cpu(defines: tuple[str, ...]) -> bool:
    """Whether the CPU code is compiled for the building machine's instruction set (GGML_NATIVE): such a wheel can stop
    with "Illegal instruction" on an older CPU."""
    return is_on([*portability_defaults(), *defines], "GGML_NATIVE")


def portability_warnings(variant: Variant, defines: tuple[str, ...]) -> list[str]:
    """What keeps a wheel built with these definitions from running on other machines, with the definitions that avoid it."""
    warnings = []
    if built_for_this_cpu(defines):
        warnings.append("its CPU code is compiled for this machine's CPU (GGML_NATIVE, llama.cpp's default) and can stop with "
                        "'Illegal instruction' elsewhere: pass -D GGML_NATIVE=OFF to build and wheel for a wheel to share")
    if variant.cuda_arch and is_on([*portability_defaults(), *defines], "GGML_CUDA_NCCL"):
        warnings.append("its CUDA backend links NCCL where the toolkit has it (GGML_CUDA_NCCL, llama.cpp's default), which "
                        "users then need: pass -D GGML_CUDA_NCCL=OFF to build and wheel unless the wheel is for several GPUs")
    return warnings


def pyproject(name: str, version: str, summary: str, description: str, settings: dict) -> str:
    """pyproject.toml of the generated wheel project (TOML's basic strings and arrays read JSON's)."""
    scripts = "\n".join(f"{script_name(t)} = {json.dumps(f'{PACKAGE}._launch:{short_name(t)}')}" for t in TOOLS)
    tool = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    return f"""[build-system]
requires = [{json.dumps(BACKEND_REQUIREMENT)}]
build-backend = "scikit_build_core.build"

[project]
name = {json.dumps(name)}
version = {json.dumps(version)}
description = {json.dumps(summary)}
readme = {{ text = {json.dumps(description)}, content-type = "text/markdown" }}
requires-python = ">=3.9"
license = {{ text = "MIT" }}
keywords = ["llama.cpp", "moe", "experts-first"]

[project.scripts]
{scripts}

[tool.scikit-build]
{tool}
"""


def describe(manifest: dict) -> tuple[str, str]:
    """The wheel's summary line and its long description: pin, patch series, CUDA arch and major, CMake options."""
    pin, wheel = manifest["pin"], manifest["wheel"]
    cuda = f"CUDA {wheel['cuda_major']}, sm_{', sm_'.join(manifest['cuda_archs'])}" if manifest["cuda_archs"] else "CPU only"
    series = f"{len(manifest['patches'])} patches of the experts-first series" if manifest["patches"] else "no patches (upstream)"
    summary = f"llama.cpp {pin['tag']} with {series}; {cuda}"
    patches = "\n".join(f"| `{p['name']}` | `{p['sha256']}` |" for p in manifest["patches"]) or "| (none) | |"
    description = f"""# {wheel['name']}

The llama.cpp tools of experts-first variant `{manifest['variant']}`: {summary}.
Console scripts: {', '.join(f'`{script_name(t)}`' for t in TOOLS)}; `import {PACKAGE}` gives their paths (`tool()`)
and the build manifest (`manifest()`).

- pin: {pin['project']} {pin['tag']} (build {pin['build_number']}), tree digest `{pin['tree_digest']}`
- CUDA: {f"arch {', '.join(manifest['cuda_archs'])}, CUDA major {wheel['cuda_major']}" if manifest['cuda_archs'] else 'none'}
- tools: {manifest['version']}
- libraries from the system: {', '.join(wheel['system_libraries'])}
- CPU code: {"for the CPU of the machine that built it (GGML_NATIVE=ON; on a CPU with AMX, its other instruction sets)" if wheel['built_for_this_cpu'] else "portable (GGML_NATIVE=OFF)"}
- CMake options (those of `python -m builder build`, then the wheel's install rules): `{' '.join(manifest['cmake_options'])}`

| patch | sha256 |
| --- | --- |
{patches}
"""
    return summary, description


def write_project(project: Path, manifest: dict, src: Path, build_dir: Path, opts: BuildOptions) -> None:
    """The wheel's project folder: pyproject.toml, llama.cpp's license and the package with its manifest."""
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(TEMPLATE_DIR / PACKAGE, project / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    (project / PACKAGE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.copy2(src / "LICENSE", project / "LICENSE")
    summary, description = describe(manifest)
    backend = {
        "cmake.source-dir": str(src),
        "build-dir": str(build_dir),
        "cmake.version": ">=3.25",
        "cmake.build-type": opts.build_type,
        "cmake.args": manifest["cmake_options"],
        "build.targets": list(TOOLS),
        "build.tool-args": ["-j", str(opts.jobs)],
        "install.components": [INSTALL_COMPONENT],
        "install.strip": True,
        "wheel.packages": [PACKAGE],
        "wheel.install-dir": PACKAGE,
        "wheel.license-files": ["LICENSE"],
    }
    (project / "pyproject.toml").write_text(pyproject(manifest["wheel"]["name"], manifest["wheel"]["version"], summary, description, backend))


def check_wheel(path: Path, manifest: dict) -> dict:
    """Stop unless every file of the wheel is in its package or its .dist-info, every ELF file finds its
    libraries through RPATH $ORIGIN alone, and each library it needs is in the wheel or one the manifest names
    as the system's. Returns what it found."""
    system = set(manifest["wheel"]["system_libraries"])
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        contents = {n: wheel.read(n) for n in names if n.startswith(f"{PACKAGE}/bin/")}
    problems = [f"{n}: outside the package" for n in names if n.split("/")[0] != PACKAGE and not n.split("/")[0].endswith(".dist-info")]
    binaries = {n: elf_needs(data) for n, data in contents.items() if is_elf(data)}
    shipped = {Path(n).name for n in binaries}
    for name, needs in binaries.items():
        if needs.search_path != ("$ORIGIN",):
            problems.append(f"{name}: RPATH {':'.join(needs.search_path) or '(none)'}, not $ORIGIN")
        problems += [f"{name}: needs {lib}, neither in the wheel nor a system library" for lib in needs.needed
                     if lib not in shipped and lib not in system]
    problems += [f"{PACKAGE}/{rel}: missing" for rel in manifest["tools"].values() if f"{PACKAGE}/{rel}" not in binaries]
    if problems:
        raise BuildError(f"the wheel {path} is not self-contained:\n" + "\n".join(f"  {p}" for p in problems),
                         f"the install rules are in {INSTALL_RULES}; the install step's output is in build.log")
    return {"files": len(names), "binaries": sorted(shipped)}


def wheel_section(tree: SourceTree, variant: Variant, series: list[Patch], needs: Needs, defines: tuple[str, ...]) -> dict:
    """The manifest's "wheel" section: what the wheel is called and what it needs from the machine it runs on."""
    cuda_major = find_toolkit(nvcc_command()).version[0] if variant.cuda_arch else None
    return {
        "name": distribution_name(variant),
        "version": wheel_version(tree, variant, series, cuda_major),
        "platform_tag": needs.platform_tag,
        "cuda_major": cuda_major,
        "system_libraries": {lib: system_library_hint(lib, cuda_major) for lib in needs.system},
        "symbol_versions": {k: ".".join(map(str, v)) for k, v in needs.symbol_versions.items()},
        "built_for_this_cpu": built_for_this_cpu(defines),
        "build_backend": BACKEND_REQUIREMENT,
    }


def build_wheel(tree: SourceTree, variant: Variant, settings: Settings, opts: BuildOptions, out_dir: Path) -> dict:
    """Build one variant's wheel into `out_dir`, replacing that variant's older wheels there."""
    start = time.monotonic()
    with log.group(f"wheel {variant.name}"):
        for warning in portability_warnings(variant, opts.defines):
            log.warn(f"  {variant.name}: {warning}")
        built = configured_variant(tree, variant, settings, opts, extra_options=tuple(wheel_cmake_options(TOOLS)))
        record_choices(built, opts)
        compile_targets(built.build_dir, list(TOOLS), opts.jobs, built.log_file, f"wheel {variant.name}")
        compile_seconds = time.monotonic() - start
        needs = runtime_needs(built.build_dir / "bin", TOOLS)
        version = version_line(built.build_dir / "bin" / "llama-cli")
        manifest = make_manifest(tree, variant, built.series, built.cmake_options, opts, compile_seconds, version)
        manifest["wheel"] = wheel_section(tree, variant, built.series, needs, opts.defines)
        project = built.build_dir.parent / "wheel-project"
        write_project(project, manifest, built.build_dir.parent / "src", built.build_dir, opts)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{variant.name}-") as scratch:
            path = run_backend(project, built, f"py3-none-{needs.platform_tag}", Path(scratch))
            found = check_wheel(path, manifest)
            for old in out_dir.glob(f"{path.name.split('-')[0]}-*.whl"):
                old.unlink()
            final = path.replace(out_dir / path.name)
        seconds = time.monotonic() - start
        log.info(f"  {final} ({log.human_bytes(final.stat().st_size)}, {seconds:.0f} s)")
    return {"variant": variant.name, "wheel": str(final), "bytes": final.stat().st_size, "seconds": round(seconds, 1),
            "compile_seconds": round(compile_seconds, 1), "manifest": manifest, **found}


def run_backend(project: Path, built: VariantBuild, tag: str, scratch: Path) -> Path:
    """pip as the PEP 517 frontend: scikit-build-core configures, builds and installs the project into a wheel
    tagged `tag` (a config setting: scikit-build-core refuses tags in pyproject.toml) in `scratch`; returns its path."""
    log.info(f"  scikit-build-core: {project / 'pyproject.toml'}")
    run([sys.executable, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps", "--no-index",
         "--config-settings", f"wheel.tags={tag}", "--wheel-dir", str(scratch), str(project)],
        env=ccache_env(built.build_dir.parent), log_file=built.log_file, error=BuildError,
        hint=f"scikit-build-core's and CMake's output is in {built.log_file}")
    wheels = list(scratch.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"pip wheel left {len(wheels)} wheels in {scratch}, expected one", f"see {built.log_file}")
    return wheels[0]


def require_backend() -> None:
    if importlib.util.find_spec("scikit_build_core") is None:
        raise UsageError("scikit-build-core (the wheel's build backend) is not installed in this Python",
                         "pip install -e '.[wheel]' (or pip install 'scikit-build-core>=0.11')")


def populate_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build one wheel per variant (experts_first_llama_<variant>-<version>-py3-none-manylinux_*.whl) with "
        "scikit-build-core driving CMake in the variant's build folder, with build's CMake options. "
        f"{VARIANTS_HELP}"
    )
    add_variant_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("dist/wheels"), help="where the wheels go (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print what was built (wheel, size, seconds, manifest) as JSON on stdout")
    add_source_arguments(parser)


def main_wheel(args: argparse.Namespace) -> int:
    check_variant_arguments(args)
    require_backend()
    settings = settings_from_args(args)
    variants = selected_variants(args)
    opts = options_from_args(args, settings, variants, args.out)
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tree = ensure_source(settings)
    log.step(f"wheels of {', '.join(v.name for v in variants)} from {tree.pin.label}")
    results = [build_wheel(tree, v, settings, opts, out_dir) for v in variants]
    if args.json:
        print(json.dumps(results, indent=2))
    return 0
