#!/usr/bin/env python3
"""Compare llama.cpp with PyTorch on the model scripts/train-moe.py trained: the perplexity ratio
(llama-perplexity's final estimate ÷ PyTorch's, same tokens and chunks) and the share of token-layer
pairs whose experts (as sets) are the same in the `--moe-trace-out` trace and in PyTorch's top-k.
Pairs the tool did not compute (-1: the last layer outside the scored half) do not count.

    python3 scripts/check-trained-model.py OUT/train-moe.json poems ppl-poems.log trace-poems.moetrace

The llama-perplexity run must use train-moe.py's --ctx and --chunks (in train-moe.json), `-b CTX`
(one chunk per batch, so the trace's tokens are in chunk order) and --no-warmup. Exit 1 when the
ratio is off by more than --ppl-tolerance or the agreement is below --min-agreement.

With PyTorch's router gaps (train-moe.py's torch-<genre>-gaps.npy: per token and layer, the logit of the
k-th expert less that of the (k+1)-th) it also says how close to a tie the differing rows were: per gap
threshold, the share of all compared rows and of the differing rows whose gap is below it, and the
agreement of the rows above it. Differences that sit at near ties are rounding (llama.cpp's F16 weights,
other kernels); differences at clear gaps would be a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.errors import BuilderError, UsageError, report  # noqa: E402
from builder.moe_trace import read_trace  # noqa: E402
from builder.report.parse import parse_perplexity  # noqa: E402


def compared_rows(llama_ids: np.ndarray, torch_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per token-layer row: whether llama.cpp computed it (no -1), and whether it did and its expert set differs
    from PyTorch's."""
    computed = (llama_ids >= 0).all(axis=2)
    differ = (np.sort(llama_ids, axis=2) != np.sort(torch_ids, axis=2)).any(axis=2) & computed
    return computed, differ


def routing_agreement(computed: np.ndarray, differ: np.ndarray) -> tuple[float, int]:
    """The share of computed rows whose expert set equals PyTorch's, and how many rows were compared."""
    n = int(computed.sum())
    return (1 - int(differ.sum()) / n if n else 0.0), n


GAP_THRESHOLDS = (1e-4, 1e-3, 1e-2, 1e-1)


def near_ties(computed: np.ndarray, differ: np.ndarray, gaps: np.ndarray) -> list[dict]:
    """Per gap threshold: the shares of compared and of differing rows below it, and the agreement above it."""
    rows = []
    for t in GAP_THRESHOLDS:
        below = gaps < t
        above = computed & ~below
        rows.append({"gap_below": t, "rows": float((below & computed).sum() / max(computed.sum(), 1)),
                     "differing_rows": float((below & differ).sum() / max(differ.sum(), 1)),
                     "agreement_above": float(1 - (differ & above).sum() / max(above.sum(), 1))})
    return rows


def compare(summary_path: Path, genre: str, ppl_log: Path, trace_path: Path) -> dict:
    summary = json.loads(summary_path.read_text())
    if genre not in summary["texts"]:
        raise UsageError(f"{summary_path} has no text {genre!r}", f"one of: {', '.join(summary['texts'])}")
    text = summary["texts"][genre]
    run = parse_perplexity(ppl_log.read_text(errors="replace"))
    if (run.chunks, run.n_ctx) != (text["chunks"], text["ctx"]):
        raise UsageError(f"{ppl_log}: {run.chunks} chunks of {run.n_ctx}, PyTorch evaluated {text['chunks']} of {text['ctx']}",
                         f"run llama-perplexity with -c {text['ctx']} --chunks {text['chunks']}")
    llama, torch = read_trace(trace_path), read_trace(summary_path.parent / text["trace"])
    if llama.ids.shape != torch.ids.shape:
        raise UsageError(f"{trace_path}: routing of shape {llama.ids.shape}, PyTorch's is {torch.ids.shape}",
                         f"record it with --no-warmup -b {text['ctx']} -c {text['ctx']} --chunks {text['chunks']}")
    computed, differ = compared_rows(llama.ids, torch.ids)
    agreement, rows = routing_agreement(computed, differ)
    result = {"text": genre, "trace": trace_path.name, "ppl_llama": run.ppl, "ppl_torch": text["ppl"], "ppl_ratio": run.ppl / text["ppl"],
              "routing_agreement": agreement, "rows_compared": rows}
    if "gaps" in text:
        gaps_path = summary_path.parent / text["gaps"]
        if not gaps_path.is_file():
            raise UsageError(f"{summary_path} names {text['gaps']}, which is not beside it", "copy train-moe.py's whole --out folder")
        gaps = np.load(gaps_path)
        if gaps.shape != llama.ids.shape[:2]:
            raise UsageError(f"{summary_path.parent / text['gaps']}: gaps of shape {gaps.shape}, the routing is {llama.ids.shape[:2]}",
                             "use the gaps train-moe.py wrote with this trace's train-moe.json")
        result["near_ties"] = near_ties(computed, differ, gaps)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("summary", type=Path, help="train-moe.json")
    p.add_argument("text", help="the held-out text's genre (e.g. poems, prose)")
    p.add_argument("ppl_log", type=Path, help="llama-perplexity's output")
    p.add_argument("trace", type=Path, help="its --moe-trace-out trace")
    p.add_argument("--ppl-tolerance", type=float, default=0.01)
    p.add_argument("--min-agreement", type=float, default=0.99)
    args = p.parse_args(argv)
    try:
        result = compare(args.summary, args.text, args.ppl_log, args.trace)
    except BuilderError as exc:
        return report(exc)
    result["pass"] = abs(result["ppl_ratio"] - 1) <= args.ppl_tolerance and result["routing_agreement"] >= args.min_agreement
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
