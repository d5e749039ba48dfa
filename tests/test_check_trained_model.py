"""scripts/check-trained-model.py: llama.cpp's routing against PyTorch's, and how close to a tie the differing rows were."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from builder.moe_trace import Trace, write_trace

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check-trained-model.py"
PPL_LOG = Path(__file__).resolve().parent / "data" / "regress" / "perplexity-upstream.log"  # 2 chunks of 128, PPL 175718.4429
TOKENS, LAYERS, EXPERTS, K = 64, 4, 16, 4


@pytest.fixture
def run(tmp_path):
    """PyTorch's routing and gaps, and llama.cpp's routing with three rows changed: two at near ties, one at a clear gap."""
    rng = np.random.default_rng(0)
    torch_ids = np.stack([[rng.choice(EXPERTS, K, replace=False) for _ in range(LAYERS)] for _ in range(TOKENS)]).astype(np.int16)
    gaps = rng.uniform(0.05, 2.0, (TOKENS, LAYERS)).astype(np.float32)
    llama_ids = torch_ids.copy()
    for token, layer, gap in ((3, 1, 5e-5), (10, 2, 5e-4), (20, 0, 0.5)):
        llama_ids[token, layer, -1] = next(e for e in range(EXPERTS) if e not in torch_ids[token, layer])
        gaps[token, layer] = gap
    llama_ids[-1, -1] = -1  # a row llama.cpp did not compute
    write_trace(Trace(LAYERS, EXPERTS, K, torch_ids), tmp_path / "torch-poems.moetrace")
    write_trace(Trace(LAYERS, EXPERTS, K, llama_ids), tmp_path / "llama.moetrace")
    np.save(tmp_path / "torch-poems-gaps.npy", gaps)
    summary = {"texts": {"poems": {"trace": "torch-poems.moetrace", "gaps": "torch-poems-gaps.npy", "ppl": 175718.4429,
                                   "chunks": 2, "ctx": 128}}}
    (tmp_path / "train-moe.json").write_text(json.dumps(summary))

    def check(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, SCRIPT, tmp_path / "train-moe.json", "poems", PPL_LOG, tmp_path / "llama.moetrace", *extra],
                              capture_output=True, text=True, timeout=60, check=False)
    return check


def test_differing_rows_are_placed_by_their_gap(run):
    proc = run()
    result = json.loads(proc.stdout)
    compared = TOKENS * LAYERS - 1
    assert result["rows_compared"] == compared
    assert result["routing_agreement"] == pytest.approx(1 - 3 / compared)
    assert proc.returncode == 1  # below 99 %
    ties = {row["gap_below"]: row for row in result["near_ties"]}
    assert ties[1e-4]["differing_rows"] == pytest.approx(1 / 3) and ties[1e-3]["differing_rows"] == pytest.approx(2 / 3)
    assert ties[1e-3]["rows"] == pytest.approx(2 / compared)
    # above a gap of 1e-3 only the clear-gap row differs: a bug, not rounding
    assert ties[1e-3]["agreement_above"] == pytest.approx(1 - 1 / (compared - 2))
    assert ties[1e-1]["differing_rows"] == pytest.approx(2 / 3)


def test_gaps_of_another_shape_are_named(run, tmp_path):
    np.save(tmp_path / "torch-poems-gaps.npy", np.zeros((TOKENS, LAYERS + 1), dtype=np.float32))
    proc = run()
    assert proc.returncode == 2
    assert f"error: {tmp_path / 'torch-poems-gaps.npy'}: gaps of shape ({TOKENS}, {LAYERS + 1}), the routing is ({TOKENS}, {LAYERS})" in proc.stderr


def test_a_missing_gaps_file_is_named(run, tmp_path):
    (tmp_path / "torch-poems-gaps.npy").unlink()
    proc = run()
    assert proc.returncode == 2
    assert f"error: {tmp_path / 'train-moe.json'} names torch-poems-gaps.npy, which is not beside it" in proc.stderr
