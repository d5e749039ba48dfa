"""`build`: one build of the pinned tree per variant, into dist/<variant>/."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cmake
import ninja

from . import FORK_NAME, __version__, log
from .compile_check import MAX_INCLUDERS, Selection, cuda_objects, select_objects
from .cuda_toolkit import CUBLAS, CUDART, DRIVER, driver_not_linked, find_toolkit, require_pieces
from .cuda_wheels import cublas_from_wheel
from .cpu_isa import isa_options, native_macros
from .cpus import usable_cpus
from .digest import file_sha256
from .errors import BuildError, UsageError
from .fetch import SourceTree, ensure_source
from .patches import PATCHES_DIR, Patch, apply_series, copy_touched_files, read_series
from .run import run
from .settings import Settings, add_source_arguments, settings_from_args
from .sync import sync_tree
from .variants import SERIES_PREFIX_RE, Variant, nvcc_command, select_variants

TOOLS = ("llama-cli", "llama-completion", "llama-server", "llama-perplexity", "llama-bench")
"""The tools of every variant: in dist/<variant>/bin and, with console scripts, in its wheel."""
RPC_SERVER = "ggml-rpc-server"
"""Upstream's RPC server, the other end of `--rpc`: built and put in dist/<variant>/bin beside the tools."""
NINJA_STEP_RE = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")
MANIFEST_SCHEMA = 2  # 2: source.verified_paths and source.files
BUILD_CHOICES = "experts-first-build.json"
"""In a variant's work folder: the build type and definitions it was last built with."""
CMAKE = str(Path(cmake.CMAKE_BIN_DIR) / "cmake")  # the Python package's, whatever PATH says


@dataclass(frozen=True)
class BuildOptions:
    build_type: str = "Release"
    """CMAKE_BUILD_TYPE."""
    jobs: int = field(default_factory=usable_cpus)
    """Parallel compile jobs."""
    defines: tuple[str, ...] = ()
    """Extra KEY=VALUE CMake definitions, passed last."""
    dist_dir: Path = field(default_factory=lambda: Path.cwd() / "dist")
    """Where dist/<variant>/ goes."""
    cuda_defines: tuple[str, ...] = ()
    """KEY=VALUE CMake definitions of CUDA variants from the toolkit check (`cuda_definitions`)."""


def work_dir(settings: Settings, variant: Variant) -> Path:
    return settings.cache_dir / "build" / variant.name


def recorded_options(settings: Settings, variant: Variant, jobs: int | None = None, dist_dir: Path | None = None) -> BuildOptions:
    """The build type and definitions `variant` was last built with (the defaults if it never was), so that
    commands that rebuild it for their own use (test-ops, regress) keep it as the user built it."""
    try:
        recorded = json.loads((work_dir(settings, variant) / BUILD_CHOICES).read_text())
    except (OSError, ValueError):
        recorded = {}
    opts = BuildOptions(build_type=recorded.get("build_type", "Release"), defines=tuple(recorded.get("defines", ())))
    return replace(opts, jobs=jobs or opts.jobs, dist_dir=dist_dir or opts.dist_dir)


def series_for(variant: Variant, patches_dir: Path = PATCHES_DIR) -> list[Patch]:
    if variant.flavor == "upstream":
        return []
    series = read_series(patches_dir)
    if variant.flavor == "baseline":
        return [p for p in series if "baseline" in p.flags]
    if m := SERIES_PREFIX_RE.match(variant.flavor):
        return series_until(series, m.group(1))
    return series


def series_until(series: list[Patch], number: str) -> list[Patch]:
    """The patches of the series up to and with the one numbered `number` (its file name's first four digits)."""
    numbers = [p.name[:4] for p in series]
    if number not in numbers:
        raise UsageError(f"the series has no patch {number}", f"use one of {', '.join(numbers)} (patches/series)")
    return series[: numbers.index(number) + 1]


def series_hash(series: list[Patch]) -> str:
    """8 hex digits that change with any patch of the series."""
    return hashlib.sha256("".join(file_sha256(p.path) for p in series).encode()).hexdigest()[:8]


def fork_commit(variant: Variant, series: list[Patch]) -> str:
    """What `--version` shows as the commit: the flavor, the fork's version and a hash of the series."""
    if variant.flavor == "upstream":
        return "upstream"
    if variant.flavor == "fork":
        prefix = FORK_NAME
    elif SERIES_PREFIX_RE.match(variant.flavor):
        prefix = f"{FORK_NAME}-{variant.flavor}"  # a prefix of the series: the fork with the number of its last patch
    else:
        prefix = f"upstream+{FORK_NAME}-{variant.flavor}"
    return f"{prefix}-{__version__}+{series_hash(series)}"


def cmake_options(tree: SourceTree, variant: Variant, series: list[Patch], opts: BuildOptions) -> list[str]:
    options = [
        "-G", "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={Path(ninja.BIN_DIR) / 'ninja'}",
        f"-DCMAKE_BUILD_TYPE={opts.build_type}",
        "-DBUILD_SHARED_LIBS=ON",
        "-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON",  # dist/<variant>/bin runs in place
        f"-DLLAMA_BUILD_NUMBER={tree.pin.build_number}",
        f"-DLLAMA_BUILD_COMMIT={fork_commit(variant, series)}",
        "-DLLAMA_BUILD_UI=OFF",  # the server's web UI is neither built nor downloaded:
        "-DLLAMA_USE_PREBUILT_UI=OFF",  # the build never touches the network
        "-DLLAMA_BUILD_TESTS=ON",  # for test-backend-ops; only built when asked for
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_APP=OFF",  # app/ (the unified `llama` binary) is outside the pin's digest: never copied, never built
        "-DGGML_RPC=ON",  # --rpc in every tool, as in upstream's releases (hot experts refuse RPC devices)
        "-DGGML_RPC_RDMA=OFF",  # not found or not per build machine: the same binaries wherever they are built
    ]
    options += isa_options(native_macros())
    if variant.cuda_arch:
        options += ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={variant.cuda_arch}", *(f"-D{d}" for d in opts.cuda_defines)]
    if shutil.which("ccache"):
        options += [f"-DCMAKE_{lang}_COMPILER_LAUNCHER=ccache" for lang in ("C", "CXX", "CUDA")]
    return options + [f"-D{d}" for d in opts.defines]


def compiler_versions(cuda: bool) -> dict[str, str]:
    def first_line(cmd: list[str], last: bool = False) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()
        except OSError:
            return "not found"
        return (out[-1] if last else out[0]) if out else "unknown"

    versions = {"cc": first_line(["cc", "--version"]), "c++": first_line(["c++", "--version"])}
    if cuda:
        versions["nvcc"] = first_line(["nvcc", "--version"], last=True)
    versions["cmake"] = first_line([CMAKE, "--version"])
    return versions


def prepare_source(tree: SourceTree, series: list[Patch], dest: Path, log_file: Path) -> None:
    """Make `dest` the pinned tree plus the series, rewriting only files whose content changes."""
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".patched-") as tmp:
        overlay = Path(tmp)
        touched = copy_touched_files(tree.path, series, overlay)
        apply_series(overlay, series, log_file)
        changed = sync_tree(tree.path, tree.files, overlay, touched, dest)
    log.info(f"  source ready: {len(series)} patches, {changed} files updated")


def _ninja_progress(label: str) -> tuple[log.Progress, callable]:
    progress = log.Progress(label, None, unit="steps")

    def on_line(line: str) -> None:
        m = NINJA_STEP_RE.match(line)
        if m:
            progress.detail = m.group(3)[:100]
            progress.advance_to(int(m.group(1)), int(m.group(2)))

    return progress, on_line


def compile_targets(build_dir: Path, targets: list[str], jobs: int, log_file: Path, label: str) -> None:
    progress, on_line = _ninja_progress(label)
    run(
        [CMAKE, "--build", str(build_dir), "--target", *targets, "-j", str(jobs)],
        env=ccache_env(build_dir.parent), log_file=log_file, on_line=on_line, error=BuildError,
        hint=f"the compiler's messages are in {log_file}",
    )
    progress.close()


def configure(src: Path, build_dir: Path, options: list[str], log_file: Path) -> None:
    """Run CMake unless the build folder was configured with the same options.

    Other options configure it afresh (`--fresh`): a definition dropped since the last run would
    otherwise stay in CMakeCache.txt, and the binaries would not be built with the options recorded."""
    stamp = build_dir / "experts-first-options.json"
    cached = (build_dir / "CMakeCache.txt").exists()
    if cached and stamp.exists() and json.loads(stamp.read_text()) == options:
        log.info("  configured already; reusing the build folder")
        return
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    run([CMAKE, *(["--fresh"] if cached else []), "-S", str(src), "-B", str(build_dir), *options], env=ccache_env(build_dir.parent), log_file=log_file, error=BuildError,
        hint=f"see {log_file}; a missing compiler or CUDA toolkit is the usual cause")
    stamp.write_text(json.dumps(options))


def ccache_env(work: Path) -> dict[str, str]:
    # paths below the variant's folder hash the same in every variant, so variants share the cache
    return {"CCACHE_BASEDIR": str(work), "CCACHE_NOHASHDIR": "1"} if shutil.which("ccache") else {}


@dataclass(frozen=True)
class VariantBuild:
    """What `build_variant` built from: the manifest records the same series and options."""

    build_dir: Path
    series: list[Patch]
    cmake_options: list[str]
    log_file: Path


def configured_variant(tree: SourceTree, variant: Variant, settings: Settings, opts: BuildOptions,
                       patches_dir: Path = PATCHES_DIR, build_name: str = "build",
                       extra_options: tuple[str, ...] = ()) -> VariantBuild:
    """The variant's patched source and its configured build folder `build_name`; nothing compiled yet."""
    work = work_dir(settings, variant)
    work.mkdir(parents=True, exist_ok=True)
    log_file = work / "build.log"
    log_file.write_text("")
    series = series_for(variant, patches_dir)
    prepare_source(tree, series, work / "src", log_file)
    options = cmake_options(tree, variant, series, opts) + list(extra_options)
    configure(work / "src", work / build_name, options, log_file)
    return VariantBuild(work / build_name, series, options, log_file)


def build_variant(tree: SourceTree, variant: Variant, settings: Settings, opts: BuildOptions,
                  targets: tuple[str, ...] = TOOLS, patches_dir: Path = PATCHES_DIR) -> VariantBuild:
    """Build `targets` of one variant in its build folder."""
    built = configured_variant(tree, variant, settings, opts, patches_dir)
    record_choices(built, opts)
    compile_targets(built.build_dir, list(targets), opts.jobs, built.log_file, f"build {variant.name}")
    return built


def record_choices(built: VariantBuild, opts: BuildOptions) -> None:
    """Remember the build type and definitions the variant is being built with (see `recorded_options`)."""
    (built.build_dir.parent / BUILD_CHOICES).write_text(json.dumps({"build_type": opts.build_type, "defines": list(opts.defines)}))


def compile_touched(tree: SourceTree, variant: Variant, settings: Settings, opts: BuildOptions,
                    max_includers: int = MAX_INCLUDERS, patches_dir: Path = PATCHES_DIR) -> Selection:
    """Compile the CUDA objects the variant's series can break (see compile_check.py), linking nothing,
    in a build folder of their own (`compile-check/`, whose driver library is a stand-in)."""
    with log.group(f"compile check {variant.name}"):
        built = configured_variant(tree, variant, settings, opts, patches_dir, "compile-check",
                                   ("-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",))
        src = built.build_dir.parent / "src"
        touched = sorted({f for p in built.series for f in p.files()})
        selection = select_objects(cuda_objects(built.build_dir, src), touched, src, max_includers)
        for title, objects in (("touched", selection.touched), ("include a touched header", selection.includers),
                               (f"left out (beyond --max-includers {max_includers})", selection.left_out)):
            log.info(f"  {title}: {', '.join(o.source for o in objects) or 'none'}")
        if selection.targets:
            compile_targets(built.build_dir, selection.targets, opts.jobs, built.log_file, f"compile check {variant.name}")
    return selection


def package(build_dir: Path, dest: Path, tools: tuple[str, ...]) -> None:
    """Copy the tools and every shared library of the build into `dest`, replacing what was there."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for lib in sorted((build_dir / "bin").glob("*.so*")):
        shutil.copy2(lib, dest / lib.name, follow_symlinks=False)
    for tool in tools:
        shutil.copy2(build_dir / "bin" / tool, dest / tool)


def version_line(binary: Path) -> str:
    """The first line `--version` prints, proving the binary finds its libraries in place."""
    proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.startswith("version:")]
    if proc.returncode != 0 or not lines:
        raise BuildError(
            f"{binary} --version failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}",
            "the packaged binary cannot run in place; check its shared libraries with ldd",
        )
    return lines[0]


def make_manifest(tree: SourceTree, variant: Variant, series: list[Patch], options: list[str],
                  opts: BuildOptions, seconds: float, version: str) -> dict:
    return {
        "schema": MANIFEST_SCHEMA,
        "variant": variant.name,
        "flavor": variant.flavor,
        "builder": {"name": FORK_NAME, "version": __version__},
        "pin": {
            "project": tree.pin.project,
            "tag": tree.pin.tag,
            "build_number": tree.pin.build_number,
            "tree_digest": tree.pin.tree_digest,
        },
        "source": {"from": tree.source, "digest": tree.digest, "verified": tree.verified,
                   "verified_paths": list(tree.pin.tree_paths), "files": len(tree.files)},
        "patches": [{"name": p.name, "sha256": file_sha256(p.path)} for p in series],
        "cmake_options": options,
        "build_type": opts.build_type,
        "compilers": compiler_versions(bool(variant.cuda_arch)),
        "cuda_archs": [variant.cuda_arch] if variant.cuda_arch else [],
        "build_seconds": round(seconds, 1),
        "tools": {t: f"bin/{t}" for t in TOOLS},
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def build_and_package(tree: SourceTree, variant: Variant, settings: Settings, opts: BuildOptions) -> dict:
    start = time.monotonic()
    with log.group(f"variant {variant.name}"):
        built = build_variant(tree, variant, settings, opts, targets=(*TOOLS, RPC_SERVER))
        dest = opts.dist_dir / variant.name
        package(built.build_dir, dest / "bin", (*TOOLS, RPC_SERVER))
        version = version_line(dest / "bin" / "llama-cli")
        manifest = make_manifest(tree, variant, built.series, built.cmake_options, opts,
                                 time.monotonic() - start, version) | {"rpc_server": f"bin/{RPC_SERVER}"}
        (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        log.info(f"  {dest}/bin: {version}")
    return manifest


def is_on(defines: list[str], key: str) -> bool:
    """Whether the last --define of `key` (also as `key:TYPE`) turns it on, as CMake reads ON/1/TRUE/YES/Y."""
    values = [d.split("=", 1)[1] for d in defines if d.split("=", 1)[0].split(":", 1)[0] == key]
    return bool(values) and values[-1].upper() in ("ON", "1", "TRUE", "YES", "Y")


def cuda_definitions(settings: Settings, from_wheels: bool, links: bool, defines: list[str]) -> tuple[str, ...]:
    """Check, before CMake runs, that the toolkit has what the CUDA backend needs; returns the CMake
    definitions that take cuBLAS from the wheel (`from_wheels`) and, for a build folder that only
    compiles (not `links`), stand in for the driver library."""
    toolkit = find_toolkit(nvcc_command())
    needs_driver = links and not is_on(defines, "GGML_CUDA_NO_VMM")
    require_pieces(toolkit, [CUDART, *([] if from_wheels else [CUBLAS]), *([DRIVER] if needs_driver else [])])
    wheel = cublas_from_wheel(toolkit, settings.cache_dir, settings.index_url) if from_wheels else []
    return (*wheel, *([] if links else [driver_not_linked(settings.cache_dir)]))


VARIANTS_HELP = (
    "Variants: --cpu, one per --cuda-arch; with --upstream also each unpatched (upstream-<variant>), "
    "with --baseline also each with only the routing-control patches (baseline-<variant>). "
    "Without --cpu or --cuda-arch: the local GPU's arch if nvidia-smi shows one, else CPU."
)


def add_variant_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The options that pick the variants and how they are compiled (`build` and `wheel`); returns the CUDA group."""
    parser.add_argument("--cuda-arch", action="append", default=[], metavar="ARCH[,ARCH...]",
                        help="CUDA arch(s) to build, each its own variant: 75, 86, 89, 90, 120 ... (repeatable)")
    parser.add_argument("--cpu", action="store_true", help="build the CPU-only variant")
    parser.add_argument("--upstream", action="store_true", help="also build each variant unpatched: upstream-<variant>")
    parser.add_argument("--baseline", action="store_true",
                        help="also build each variant as upstream plus the series' `baseline` patches (routing control, log flush): baseline-<variant>")
    parser.add_argument("--series-until", metavar="NNNN",
                        help="also build each variant with the series up to and with patch NNNN: fork-NNNN-<variant> "
                        "(to find which patch changed speed or output)")
    parser.add_argument("--jobs", "-j", type=int, default=usable_cpus(),
                        help="parallel compile jobs (default: the CPUs this process may use, by affinity and cgroup quota: %(default)s)")
    parser.add_argument("--build-type", default="Release", choices=["Release", "RelWithDebInfo", "Debug"], help="(default: %(default)s)")
    parser.add_argument("--define", "-D", action="append", default=[], metavar="KEY=VALUE", help="extra CMake definition (repeatable), e.g. -D GGML_NATIVE=OFF")
    cuda = parser.add_argument_group("CUDA")
    cuda.add_argument("--cuda-libs-from-wheels", action="store_true",
                      help="take cuBLAS from the nvidia-cublas wheel of the package index (installed once into the cache), "
                      "for a CUDA toolkit without it; the toolkit's folders are not touched")
    return cuda


def populate_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = f"Build the tools for each variant into DIST/<variant>/bin with a manifest.json. {VARIANTS_HELP}"
    cuda = add_variant_arguments(parser)
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="output folder (default: ./dist)")
    parser.add_argument("--json", action="store_true", help="print the manifests (with --compile-only-touched: the objects) as JSON on stdout")
    cuda.add_argument("--compile-only-touched", action="store_true",
                      help="a quick compile check of CUDA variants: compile only the CUDA objects whose sources the series "
                      "touches or that directly include a header it touches; link nothing, package nothing")
    cuda.add_argument("--max-includers", type=int, default=MAX_INCLUDERS, metavar="N",
                      help="with --compile-only-touched: compile at most N objects that include a touched header, "
                      "smallest first (default: %(default)s)")
    add_source_arguments(parser)


def check_variant_arguments(args: argparse.Namespace) -> None:
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} must be at least 1", "pass --jobs N with N >= 1")
    for define in args.define:
        if "=" not in define:
            raise UsageError(f"--define {define!r} lacks '='", "pass --define KEY=VALUE")
    if args.series_until is not None:
        series_until(read_series(), args.series_until)


def selected_variants(args: argparse.Namespace) -> list[Variant]:
    flavors = tuple(f for f, wanted in (("upstream", args.upstream), ("baseline", args.baseline),
                                        (f"fork-{args.series_until}", args.series_until is not None)) if wanted)
    return select_variants(args.cuda_arch, args.cpu, flavors)


def options_from_args(args: argparse.Namespace, settings: Settings, variants: list[Variant], dist_dir: Path, links: bool = True) -> BuildOptions:
    """The build options of `add_variant_arguments`, with the CUDA toolkit checked when a variant needs it."""
    cuda = any(v.cuda_arch for v in variants)
    cuda_defines = cuda_definitions(settings, args.cuda_libs_from_wheels, links, args.define) if cuda else ()
    return BuildOptions(args.build_type, args.jobs, tuple(args.define), dist_dir.resolve(), cuda_defines)


def main_build(args: argparse.Namespace) -> int:
    check_variant_arguments(args)
    if args.max_includers < 0:
        raise UsageError(f"--max-includers {args.max_includers} is negative", "pass --max-includers N with N >= 0")
    settings = settings_from_args(args)
    variants = selected_variants(args)
    if args.compile_only_touched and not all(v.cuda_arch for v in variants):
        raise UsageError("--compile-only-touched checks CUDA variants only",
                         "pass --cuda-arch ARCH without --cpu; the CPU variants' objects are checked by building them")
    opts = options_from_args(args, settings, variants, args.dist, links=not args.compile_only_touched)
    tree = ensure_source(settings)
    if args.compile_only_touched:
        log.step(f"compile check of {', '.join(v.name for v in variants)} from {tree.pin.label}")
        results = [{"variant": v.name, **asdict(compile_touched(tree, v, settings, opts, args.max_includers))} for v in variants]
    else:
        log.step(f"building {', '.join(v.name for v in variants)} from {tree.pin.label}")
        results = [build_and_package(tree, v, settings, opts) for v in variants]
    if args.json:
        print(json.dumps(results, indent=2))
    return 0
