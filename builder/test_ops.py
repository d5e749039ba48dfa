"""`test-ops`: upstream's test-backend-ops from a built variant, summarised."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import log
from .build import build_variant, recorded_options
from .errors import CommandError
from .fetch import ensure_source
from .run import run
from .settings import add_source_arguments, settings_from_args
from .variants import variant_from_name

TARGET = "test-backend-ops"
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
BACKEND_RE = re.compile(r"^Backend \d+/\d+: (\S+)")
# a case's line; another case's error message may precede it on the same line
CASE_RE = re.compile(r"(?:^|\s)([A-Z][A-Z0-9_]*)\((.*)\): (\S.*)$")


@dataclass
class BackendSummary:
    name: str
    passed: int = 0
    failed: int = 0
    unsupported: int = 0
    skipped: str = ""
    """Why test-backend-ops skipped the whole backend, if it did."""
    failures: list[str] = field(default_factory=list)


def parse_output(text: str) -> list[BackendSummary]:
    """Per-backend counts from test-backend-ops' console output."""
    backends: list[BackendSummary] = []
    for raw in text.splitlines():
        line = ANSI_RE.sub("", raw)
        m = BACKEND_RE.match(line)
        if m:
            backends.append(BackendSummary(m.group(1)))
            continue
        if not backends:
            continue
        current = backends[-1]
        if line.startswith("  Skipping"):
            current.skipped = line.strip()
        m = CASE_RE.search(line)
        if not m:
            continue
        result = m.group(3)
        if result.startswith("not supported") or result.startswith("skipping"):
            current.unsupported += 1
        elif result.endswith("OK"):
            current.passed += 1
        elif result.endswith("FAIL"):
            current.failed += 1
            current.failures.append(f"{m.group(1)}({m.group(2)}): {result}")
    return backends


def populate_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build test-backend-ops for a variant (if needed) and run it: each backend's results are "
        "compared with the CPU backend. The default ops are our cases: MUL_MAT_ID_SKIP for skipped "
        "expert ids (each also checks itself against a masked reference), MUL_MAT_ID_HOT for hot "
        "copies of experts (each checks itself against the experts it should read) and MOE_HOST_SEND for the "
        "cold experts handed to a CPU worker; -o MUL_MAT_ID runs "
        "upstream's own cases. A CPU variant runs -b CPU, which compares the CPU backend with its "
        "reference mode (upstream skips the CPU backend otherwise). Exits non-zero when a case "
        "fails or no case ran."
    )
    parser.add_argument("--variant", default="cpu",
                        help="cpu, cuda-smXX, or their upstream-/baseline- flavors (default: %(default)s)")
    parser.add_argument("-o", "--op", default="MUL_MAT_ID_SKIP,MUL_MAT_ID_HOT,MOE_HOST_SEND", help="ops or case regexes, as test-backend-ops -o (default: %(default)s)")
    parser.add_argument("-b", "--backend", help="only this backend, e.g. CUDA0 (default: all; CPU for a CPU variant)")
    parser.add_argument("-p", "--params", help="filter cases by a regex over their parameters")
    parser.add_argument("--mode", default="test", choices=["test", "perf", "support"], help="(default: %(default)s)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile jobs (default: the CPUs this process may use)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_source_arguments(parser)


def main_test_ops(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    variant = variant_from_name(args.variant)
    tree = ensure_source(settings)
    with log.group(f"build {TARGET} for {variant.name}"):  # in the variant's folder, with its options
        build_dir = build_variant(tree, variant, settings, recorded_options(settings, variant, args.jobs), targets=(TARGET,)).build_dir
    cmd: list[str | Path] = [build_dir / "bin" / TARGET, args.mode, "-o", args.op]
    backend = args.backend or (None if variant.cuda_arch else "CPU")
    cmd += ["-b", backend] if backend else []
    cmd += ["-p", args.params] if args.params else []
    log.step(f"running {' '.join(str(c) for c in cmd[1:])}")
    log_file = build_dir.parent / "test-ops.log"
    log_file.write_text("")  # run() appends: keep only this run, which a failed run is parsed from
    try:
        output = run(cmd, log_file=log_file)
        code = 0
    except CommandError as exc:
        output, code = log_file.read_text(), 1
        log.warn(exc.message.splitlines()[0])
    backends = parse_output(output)
    ran = sum(b.passed + b.failed for b in backends)
    failed = sum(b.failed for b in backends)
    if args.json:
        print(json.dumps({"variant": variant.name, "op": args.op, "mode": args.mode, "exit_code": code,
                          "backends": [asdict(b) for b in backends]}, indent=2))
    else:
        for b in backends:
            note = f" ({b.skipped})" if b.skipped else ""
            print(f"{b.name}: {b.passed} passed, {b.failed} failed, {b.unsupported} not supported{note}")
            for failure in b.failures:
                print(f"  FAIL {failure}")
    if args.mode == "test" and ran == 0:
        log.warn("no test case ran: test-backend-ops compares a backend with the CPU backend, so it needs a second backend")
        return 1
    return 1 if failed or code else 0
