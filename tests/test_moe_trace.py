"""Routing traces: the reader (on traces recorded by the routing patch) and the distinct-experts statistic."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest

from builder.moe_trace import (Trace, TraceError, distinct_experts_per_window, read_trace, routed_tokens, trace_stem,
                               fitted_to_model, selection_counts, take_tokens, tile_layers, write_trace)

DATA = Path(__file__).parent / "data" / "regress"


def trace(ids) -> Trace:
    ids = np.asarray(ids, dtype=np.int16)
    return Trace(n_layer=ids.shape[1], n_expert=16, n_expert_used=ids.shape[2], ids=ids)


def test_counts_distinct_experts_per_window_and_layer():
    ids = np.zeros((64, 2, 2), dtype=np.int16)
    ids[:32, 0] = [[0, 1]] * 16 + [[2, 3]] * 16  # window 1, layer 0: experts 0-3
    ids[32:, 0] = [[4, 5]] * 32  # window 2, layer 0: experts 4, 5
    ids[:, 1] = np.stack([np.arange(64) % 16, (np.arange(64) + 1) % 16], axis=1)  # layer 1: all 16 in each window
    assert distinct_experts_per_window(trace(ids), window=32) == [3.0, 16.0]


def test_partial_last_window_is_dropped_and_short_traces_are_one_window():
    ids = np.zeros((40, 1, 1), dtype=np.int16)
    ids[32:, 0, 0] = 7  # only in the partial window
    assert distinct_experts_per_window(trace(ids), window=32) == [1.0]
    assert distinct_experts_per_window(trace(ids[:10]), window=32) == [1.0]
    assert distinct_experts_per_window(trace(ids[32:]), window=32) == [1.0]


def test_negative_ids_are_not_experts():
    ids = np.full((32, 1, 2), -1, dtype=np.int16)
    ids[:, 0, 0] = 5
    assert distinct_experts_per_window(trace(ids)) == [1.0]


def test_empty_trace_and_bad_window():
    assert distinct_experts_per_window(trace(np.zeros((0, 3, 2)))) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="window"):
        distinct_experts_per_window(trace(np.zeros((4, 1, 1))), window=0)


# ---------------------------------------------------------------- traces recorded by the routing patch
# (tests/data/regress/README.md has the commands: qwen3moe, 4 layers, 16 experts, 4 used)


def test_reads_a_completion_trace():
    """The doc's example: warmup 2 tokens, prompt 9, 15 generated one by one = 26 tokens in 17 records."""
    t = read_trace(DATA / "trace-completion.moetrace")
    assert (t.n_layer, t.n_expert, t.n_expert_used, t.n_tokens) == (4, 16, 4, 26)
    assert t.ids.dtype == np.int16 and t.ids.min() == -1 and t.ids.max() < 16
    # the last layer is computed only for output rows: the prompt's other tokens show -1 there
    assert (t.ids[:, :3] >= 0).all() and (t.ids[:, 3] == -1).all(axis=1).sum() == 9
    assert all(len(set(row)) == 4 for row in t.ids[:, :3].reshape(-1, 4).tolist())  # distinct top-k


def test_routed_tokens_drop_rows_the_last_layer_did_not_compute():
    t = read_trace(DATA / "trace-perplexity.moetrace")  # 2 chunks of 128, the second half of each scored
    routed = routed_tokens(t)
    assert (t.n_tokens, routed.n_tokens) == (256, 128)
    assert (routed.ids >= 0).all()
    raw, clean = distinct_experts_per_window(t), distinct_experts_per_window(routed)
    assert raw[3] < 8 < clean[3]  # the unfilled rows would halve the last layer's count
    assert all(12 <= d <= 16 for d in clean)


def test_dense_layers_do_not_drop_tokens():
    ids = np.array(read_trace(DATA / "trace-zipf.moetrace").ids)
    ids[:, 0] = -1  # as a leading dense layer (DeepSeek) records
    routed = routed_tokens(trace(ids))
    assert routed.n_tokens == 32 and distinct_experts_per_window(routed)[0] == 0.0


def test_write_then_read_is_the_same_trace(tmp_path):
    t = routed_tokens(read_trace(DATA / "trace-zipf.moetrace"))
    write_trace(t, tmp_path / "t.moetrace")
    back = read_trace(tmp_path / "t.moetrace")
    assert (back.n_layer, back.n_expert, back.n_expert_used) == (4, 16, 4) and np.array_equal(back.ids, t.ids)
    assert (tmp_path / "t.moetrace").stat().st_size == 20 + 4 + 2 * t.n_tokens * 4 * 4


def test_a_trace_compressed_with_xz_reads_as_the_trace(tmp_path):
    # regress/traces and the reports keep their traces as .xz; a name without .xz is read as it is
    raw = (DATA / "trace-zipf.moetrace").read_bytes()
    (tmp_path / "t.moetrace.xz").write_bytes(lzma.compress(raw))
    (tmp_path / "t.moetrace").write_bytes(lzma.compress(raw))
    assert np.array_equal(read_trace(tmp_path / "t.moetrace.xz").ids, read_trace(DATA / "trace-zipf.moetrace").ids)
    assert trace_stem(tmp_path / "t.moetrace.xz") == trace_stem(tmp_path / "t.moetrace") == "t"
    with pytest.raises(TraceError, match="not a version 1"):
        read_trace(tmp_path / "t.moetrace")
    (tmp_path / "cut.moetrace.xz").write_bytes(lzma.compress(raw)[:-8])
    with pytest.raises(TraceError, match="not a readable xz file") as exc:
        read_trace(tmp_path / "cut.moetrace.xz")
    assert str(tmp_path / "cut.moetrace.xz") in exc.value.message and "xz -t" in exc.value.hint


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"MOEX" + b[4:], "not a version 1"),
    (lambda b: b[:4] + (2).to_bytes(4, "little") + b[8:], "not a version 1"),
    (lambda b: b[:-3], "truncated record"),
    (lambda b: b[:10], "too short"),
    (lambda b: b[:12] + (0).to_bytes(4, "little") + b[16:], "invalid header"),
    (lambda b: b[:-2] + (16).to_bytes(2, "little"), "outside"),
])
def test_bad_files_are_named(tmp_path, mutate, message):
    bad = tmp_path / "bad.moetrace"
    bad.write_bytes(mutate((DATA / "trace-completion.moetrace").read_bytes()))
    with pytest.raises(TraceError, match=message) as exc:
        read_trace(bad)
    assert str(bad) in exc.value.message


def test_uniform_routing_matches_the_expected_count():
    """`--moe-route uniform` over 128 experts, 8 a token: 32 tokens cover 128 (1 - (120/128)^32) = 111.8 on average."""
    t = routed_tokens(read_trace(DATA / "trace-uniform-128x8.moetrace"))
    assert (t.n_tokens, t.n_expert, t.n_expert_used) == (512, 128, 8)
    expected = 128 * (1 - (1 - 8 / 128) ** 32)
    assert all(abs(d - expected) < 2.5 for d in distinct_experts_per_window(t))


def test_tiled_layers_replay_their_source_layer_with_renamed_experts():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 16, size=(96, 2, 2)).astype(np.int16)
    ids[5, 1, :] = -1  # a row the source did not compute stays uncomputed
    tiled = tile_layers(trace(ids), 5, seed=1)
    assert tiled.n_layer == 5 and tiled.ids.shape == (96, 5, 2)
    assert (tiled.ids[:, :2] == ids).all()  # the first copy is the source itself
    for layer in range(2, 5):
        src = ids[:, layer % 2]
        assert ((tiled.ids[:, layer] < 0) == (src < 0)).all()
        # a renaming: one expert maps to one expert, so skew and reuse are the source layer's
        pairs = {(int(a), int(b)) for a, b in zip(src.ravel(), tiled.ids[:, layer].ravel()) if a >= 0}
        assert len({a for a, _ in pairs}) == len(pairs) == len({b for _, b in pairs})
        assert sorted(selection_counts(tiled)[layer]) == sorted(selection_counts(trace(ids))[layer % 2])
    source = distinct_experts_per_window(trace(ids), window=8)
    assert distinct_experts_per_window(tiled, window=8)[2:] == [source[0], source[1], source[0]]
    assert not (tiled.ids[:, 2] == tiled.ids[:, 0]).all()  # renamed, not copied


def test_take_tokens_keeps_the_order_and_stops_at_the_end():
    ids = np.arange(10, dtype=np.int16).reshape(10, 1, 1)
    assert take_tokens(trace(ids), 3, 4).ids.ravel().tolist() == [3, 4, 5, 6]
    assert take_tokens(trace(ids), 8, 4).n_tokens == 2


def test_a_trace_fits_a_model_of_its_expert_layout_at_any_depth(tmp_path):
    ids = np.random.default_rng(0).integers(0, 16, size=(40, 2, 2)).astype(np.int16)
    path = tmp_path / "t.moetrace"
    assert (fitted_to_model(trace(ids), path, 2, 16, 2).ids == ids).all()
    assert fitted_to_model(trace(ids), path, 5, 16, 2).n_layer == 5
    with pytest.raises(TraceError, match=f"{path}: a trace of 16 experts with 2 used per token cannot route a model of 32 experts with 2 used"):
        fitted_to_model(trace(ids), path, 2, 32, 2)
