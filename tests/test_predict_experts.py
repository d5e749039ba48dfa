"""scripts/predict-experts.py: its measures of a prefetch's coverage (numpy, no PyTorch) and its refusals of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from llama_tools import load_script

predict = load_script("predict-experts")
NAN = np.nan


def test_a_slot_goes_to_the_best_scored_cold_expert_never_to_a_hot_one():
    ids = np.array([[[1, 2]]], dtype=np.int16)          # one token, one layer, two used
    hot = np.array([[True, False, False, False]])       # expert 0 hot: its top score must not take a slot
    scores = np.array([[[9.0, 1.0, 5.0, 3.0]]])
    assert predict.cold_coverage(ids, scores, hot, 1) == (1, 2)   # fetches 2
    assert predict.cold_coverage(ids, scores, hot, 2) == (1, 2)   # fetches 2, 3
    assert predict.cold_coverage(ids, scores, hot, 3) == (2, 2)   # fetches 2, 3, 1
    assert predict.cold_coverage(ids, scores, hot, 8) == (2, 2)   # more slots than cold experts


def test_ties_go_to_the_lower_id_and_a_layer_without_a_prediction_covers_nothing():
    ids = np.array([[[2, 3], [2, 3]]], dtype=np.int16)
    hot = np.zeros((2, 4), dtype=bool)
    scores = np.array([[[0.0, 0.0, 0.0, 0.0], [NAN] * 4]])
    assert predict.cold_coverage(ids, scores, hot, 2) == (0, 4)   # layer 0 fetches 0 and 1; layer 1 nothing
    assert predict.cold_coverage(ids, scores, hot, 3) == (1, 4)


def test_topk_recall_counts_the_selections_among_the_first_k_on_layers_with_a_prediction():
    ids = np.array([[[0, 1], [0, 1]], [[2, 3], [0, 1]]], dtype=np.int16)   # layer 1 would be hits, had it a prediction
    scores = np.array([[[4.0, 3.0, 2.0, 1.0], [NAN] * 4],
                       [[4.0, 3.0, 2.0, 1.0], [NAN] * 4]])
    assert predict.topk_recall(ids, scores) == 0.5
    assert predict.topk_recall(ids, np.full((2, 2, 4), NAN)) is None


def test_cooccurrence_scores_the_experts_that_followed_the_previous_layers_selections():
    profile = np.array([[[0, 1], [2, 3]], [[0, 1], [2, 3]], [[1, 0], [3, 0]]], dtype=np.int16)
    ids = np.array([[[0, 1], [3, 2]]], dtype=np.int16)
    scores = predict.cooccurrence_scores(profile, ids, 4)
    assert np.isnan(scores[0, 0]).all()
    # layer 1 after {0, 1}: each profile token adds 2 (one per previous expert) to its two layer-1 experts
    assert scores[0, 1].tolist() == [2.0, 0.0, 4.0, 6.0]


def test_an_oracle_covers_every_miss_with_as_many_slots_as_experts_used_and_more_hot_is_the_larger_static_set():
    rng = np.random.default_rng(0)
    n_expert, used = 16, 2
    profile = np.stack([[rng.choice(n_expert, used, replace=False) for _ in range(3)] for _ in range(64)]).astype(np.int16)
    ids = np.stack([[rng.choice(n_expert, used, replace=False) for _ in range(3)] for _ in range(32)]).astype(np.int16)
    oracle = np.zeros((32, 3, n_expert))
    np.put_along_axis(oracle, ids.astype(np.int64), 1.0, axis=2)
    result = predict.measure(ids, {"oracle": oracle}, profile, n_expert, [25, 50], [1, 2])
    counts = np.stack([np.bincount(profile[:, layer].ravel(), minlength=n_expert) for layer in range(3)])
    for row in result["budgets"]:
        hot = predict.hot_mask(counts, row["hot_per_layer"])
        assert row["hit_rate"] == pytest.approx(hot[np.arange(3)[None, :, None], ids].mean())
        assert row["slots"]["2"]["oracle"] == 1.0
        assert row["slots"]["1"]["oracle"] < 1.0
        for m in ("1", "2"):
            larger = predict.hot_mask(counts, row["hot_per_layer"] + int(m))
            cold_now = ~hot[np.arange(3)[None, :, None], ids]
            assert row["slots"][m]["more-hot"] == pytest.approx((cold_now & larger[np.arange(3)[None, :, None], ids]).sum() / cold_now.sum())
    assert result["topk_recall"]["oracle"] == 1.0


def write_model_dir(root: Path, without: str = "") -> Path:
    for name in ("train-moe.json", "hf", "heldout-prose.txt", "heldout-poems.txt"):
        if name == without:
            continue
        if name == "hf":
            (root / name).mkdir(parents=True)
        else:
            root.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(json.dumps({"config": {"ctx": 8}}) if name.endswith(".json") else "text")
    return root


@pytest.mark.parametrize("missing", ["train-moe.json", "hf", "heldout-prose.txt", "heldout-poems.txt"])
def test_a_model_folder_lacking_a_file_is_refused_naming_it(missing, tmp_path, capsys):
    model = write_model_dir(tmp_path / "model", without=missing)
    assert predict.main(["--model", str(model), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {model} has no {missing}"
    assert "train-moe.py's --out" in err[1]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags", [["--budgets", "25,x"], ["--budgets", "0,50"], ["--slots", "0"], ["--budgets", "100"]])
def test_bad_budgets_or_slots_are_refused_with_an_example(flags, tmp_path, capsys):
    model = write_model_dir(tmp_path / "model")
    assert predict.main(["--model", str(model), "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: --budgets") and "e.g. --budgets 25,50,75" in err[1]


def test_the_router_check_compares_selected_sets_with_the_trace_recorded_in_training(tmp_path):
    from builder.errors import UsageError
    from builder.moe_trace import Trace, write_trace

    ids = np.array([[[0, 1], [2, 3]], [[1, 2], [3, 0]]], dtype=np.int16)
    recorded = ids[:, :, ::-1].copy()              # the same sets, top-1 first in another order
    recorded[1, 1] = [3, 1]
    write_trace(Trace(2, 4, 2, recorded), tmp_path / "torch-prose.moetrace")
    assert predict.router_check(ids, tmp_path / "torch-prose.moetrace") == 0.75
    assert predict.router_check(ids, tmp_path / "none.moetrace") is None
    with pytest.raises(UsageError, match=r"routing of shape \(2, 2, 2\), this run's is \(3, 2, 2\)"):
        predict.router_check(np.concatenate([ids, ids[:1]]), tmp_path / "torch-prose.moetrace")


def random_trace(rng, tokens: int, layers: int, n_expert: int, used: int, dense_layer: int | None = None):
    from builder.moe_trace import Trace

    ids = np.stack([[rng.choice(n_expert, used, replace=False) for _ in range(layers)] for _ in range(tokens)]).astype(np.int16)
    if dense_layer is not None:
        ids[:, dense_layer] = -1
    return Trace(layers, n_expert, used, ids)


def test_recorded_traces_need_no_pytorch_and_their_dense_layers_are_left_out(tmp_path):
    from builder.moe_trace import write_trace

    rng = np.random.default_rng(1)
    write_trace(random_trace(rng, 48, 4, 16, 2, dense_layer=0), tmp_path / "replay.moetrace")
    write_trace(random_trace(rng, 96, 4, 16, 2, dense_layer=0), tmp_path / "profile.moetrace")
    assert predict.main(["--traces", str(tmp_path / "replay.moetrace"), str(tmp_path / "profile.moetrace"),
                         "--out", str(tmp_path / "out"), "--budgets", "25", "--slots", "1"]) == 0
    result = json.loads((tmp_path / "out" / "predict-experts.json").read_text())
    assert (result["tokens"], result["layers"], result["experts"]) == (48, 3, 16)
    assert set(result["topk_recall"]) == {"co-occurrence"}
    assert set(result["budgets"][0]["slots"]["1"]) == {"co-occurrence", "more-hot"}
    assert "recorded routing only" in (tmp_path / "out" / "predict-experts.md").read_text()


def test_traces_of_two_model_shapes_are_refused(tmp_path, capsys):
    from builder.moe_trace import write_trace

    rng = np.random.default_rng(2)
    write_trace(random_trace(rng, 8, 4, 16, 2), tmp_path / "replay.moetrace")
    write_trace(random_trace(rng, 8, 4, 32, 2), tmp_path / "profile.moetrace")
    assert predict.main(["--traces", str(tmp_path / "replay.moetrace"), str(tmp_path / "profile.moetrace"),
                         "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "a trace of another model shape (layers, experts) (4, 32)" in err and "profile with a trace of the same model" in err
    assert not (tmp_path / "out").exists()


def test_the_held_out_text_keeps_its_crlf_line_ends_as_train_moe_and_llama_perplexity_read_it(tmp_path):
    (tmp_path / "heldout-prose.txt").write_bytes("Of Books.\r\nAreopagitica\r\n".encode("utf-8"))
    assert predict.heldout_text(tmp_path, "prose") == "Of Books.\r\nAreopagitica\r\n"


def test_a_predictors_trace_ranks_its_best_experts_first_and_marks_layers_without_a_prediction():
    scores = np.array([[[1.0, 3.0, 3.0, 2.0], [NAN] * 4]])   # one token, two layers
    trace = predict.ranking_trace(scores, 3)
    assert (trace.n_layer, trace.n_expert, trace.n_expert_used) == (2, 4, 3)
    assert trace.ids.tolist() == [[[1, 2, 3], [-1, -1, -1]]]   # ties to the lower id


def test_the_routing_and_the_predictions_are_written_as_traces_of_the_same_tokens(tmp_path):
    from builder.moe_trace import read_trace

    rng = np.random.default_rng(2)
    ids, profile_ids = (random_trace(rng, n, 3, 16, 2).ids for n in (40, 24))
    predictions = {"before-attention": rng.normal(size=(40, 3, 16)), "layer-ahead": rng.normal(size=(40, 3, 16))}
    predictions["layer-ahead"][:, 0] = NAN
    predict.write_replay_traces(tmp_path, "prose", "poems", ids, profile_ids, predictions, 5)
    assert np.array_equal(read_trace(tmp_path / "routing-prose.moetrace").ids, ids)
    assert np.array_equal(read_trace(tmp_path / "routing-poems.moetrace").ids, profile_ids)
    for name, scores in predictions.items():
        ranked = read_trace(tmp_path / f"{name}-prose.moetrace")
        assert ranked.ids.shape == (40, 3, 5)
        assert np.array_equal(ranked.ids, predict.ranking_trace(scores, 5).ids)
    assert (read_trace(tmp_path / "layer-ahead-prose.moetrace").ids[:, 0] == -1).all()


def test_a_rank_below_one_is_refused(tmp_path, capsys):
    assert predict.main(["--traces", "r", "p", "--out", str(tmp_path), "--rank", "0"]) == 2
    assert "--rank 0" in capsys.readouterr().err
