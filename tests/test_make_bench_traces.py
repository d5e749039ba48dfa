"""scripts/make-bench-traces.py: a replay, its profile and the predictions of the same tokens, tiled alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from builder.moe_trace import Trace, read_trace, write_trace

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make-bench-traces.py"


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def routing(rng, n_tokens: int) -> Trace:
    """3 layers of 16 experts, 2 used; the last layer of every 4th token not computed, as llama-perplexity leaves it."""
    ids = np.stack([np.stack([rng.choice(16, 2, replace=False) for _ in range(3)]) for _ in range(n_tokens)]).astype(np.int16)
    ids[::4, 2] = -1
    return Trace(3, 16, 2, ids)


def test_predictions_are_cut_and_tiled_as_the_replay_is(tmp_path):
    rng = np.random.default_rng(3)
    trace = routing(rng, 80)
    # an oracle ranking: its best expert is the router's first, then four others
    others = (trace.ids[:, :, :1] + np.arange(1, 5, dtype=np.int16)) % 16
    oracle = np.where(trace.ids[:, :, :1] >= 0, np.concatenate([trace.ids[:, :, :1], others], axis=2), -1).astype(np.int16)
    write_trace(trace, tmp_path / "routing.moetrace")
    write_trace(Trace(3, 16, 5, oracle), tmp_path / "oracle.moetrace")
    done = run(tmp_path / "routing.moetrace", "--layers", 7, "--replay-tokens", 32, "-o", tmp_path / "bt" / "learned",
               "--predictions", tmp_path / "oracle.moetrace")
    assert done.returncode == 0, done.stderr
    replay, ranked = read_trace(tmp_path / "bt" / "learned-replay.bin"), read_trace(tmp_path / "bt" / "learned-oracle.bin")
    assert replay.ids.shape == (32, 7, 2) and ranked.ids.shape == (32, 7, 5)
    # the same tokens (the unrouted ones left out of both) and the same renaming of each tiled layer
    assert np.array_equal(ranked.ids[:, :, 0], replay.ids[:, :, 0])
    assert not np.array_equal(replay.ids[:, 3], replay.ids[:, 0])   # layer 3 replays layer 0 renamed


def test_predictions_of_other_tokens_are_refused_naming_both_files(tmp_path):
    rng = np.random.default_rng(4)
    write_trace(routing(rng, 80), tmp_path / "routing.moetrace")
    write_trace(Trace(3, 16, 5, np.zeros((60, 3, 5), dtype=np.int16)), tmp_path / "other.moetrace")
    done = run(tmp_path / "routing.moetrace", "--replay-tokens", 32, "-o", tmp_path / "bt" / "learned",
               "--predictions", tmp_path / "other.moetrace")
    assert done.returncode != 0
    assert "other.moetrace: 60 tokens" in done.stderr and "routing.moetrace: 80" in done.stderr
    assert not (tmp_path / "bt").exists()
