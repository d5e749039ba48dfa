"""Command line: `python -m builder <command>` (also installed as `experts-first`)."""

from __future__ import annotations

import argparse
import sys

from . import __version__, build, fetch, log, patches, regress, synth_model, test_ops, trace_flatten, trace_stats, wheel
from .errors import BuilderError, report

COMMANDS = {
    "fetch": (fetch, "download, verify and cache the pinned llama.cpp source"),
    "patches": (patches, "check the patch series, or edit it as a git work tree"),
    "build": (build, "build llama-cli, llama-server, llama-perplexity and llama-bench per variant into dist/"),
    "test-ops": (test_ops, "run upstream's test-backend-ops (default: our MUL_MAT_ID_SKIP, MUL_MAT_ID_HOT and MOE_HOST_SEND cases) from a built variant"),
    "regress": (regress, "perplexity, KL divergence and tokens/s of the fork against upstream, with reports"),
    "trace-stats": (trace_stats, "distinct experts, coverage, reuse distance and cache hit rates of a MoE routing trace"),
    "trace-flatten": (trace_flatten, "mix uniform selections into a MoE routing trace until it has a given skew"),
    "wheel": (wheel, "build one Python wheel per variant with scikit-build-core: the tools, their libraries and console scripts"),
    "make-model": (synth_model, "write a synthetic MoE GGUF (qwen3moe, olmoe, llama, deepseek2) with the gguf package"),
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m builder",
        description="experts-first: build a llama.cpp fork with expert-level MoE offloading, "
        "and compare it with upstream.",
    )
    parser.add_argument("--version", action="version", version=f"experts-first {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors and results")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.populate_parser(cmd)
        cmd.set_defaults(handler=getattr(module, f"main_{name.replace('-', '_')}"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    log.set_quiet(args.quiet)
    try:
        return args.handler(args)
    except BuilderError as exc:
        return report(exc)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
