"""trace-stats and trace-flatten, checked against direct counts (plain Python loops over the trace),
on traces written here and on the committed traces of the trained model (regress/traces/)."""

from __future__ import annotations

import bisect
import json
import math
import statistics
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pytest

from builder.__main__ import main
from builder.expert_cache import hysteresis_hit_rates
from builder.moe_trace import Trace, read_routed, read_trace, take_tokens, write_trace

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted((ROOT / "regress" / "traces").glob("learned-*.moetrace.xz"))


def skewed_trace(path: Path, seed: int = 0, n_tokens: int = 300, n_layer: int = 3, n_expert: int = 16, k: int = 4) -> Path:
    """Zipf-like routing with runs of repeated rows (temporal locality); the last layer is not
    computed for every fifth token (-1), as llama-perplexity leaves it outside the scored half."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, n_expert + 1) ** 1.2
    ids = np.empty((n_tokens, n_layer, k), dtype=np.int16)
    for t in range(n_tokens):
        for layer in range(n_layer):
            repeat = t > 0 and rng.random() < 0.3
            ids[t, layer] = ids[t - 1, layer] if repeat else rng.choice(n_expert, k, replace=False, p=weights / weights.sum())
    ids[::5, -1] = -1
    write_trace(Trace(n_layer, n_expert, k, ids), path)
    return path


def stats_json(capsys, *args) -> dict:
    assert main(["trace-stats", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------- direct counts


def routed_rows(path: Path) -> tuple[Trace, list[list[list[int]]]]:
    """The trace and, per layer, the id lists of the tokens every layer computed."""
    trace = read_trace(path)
    tokens = [t for t in range(trace.n_tokens) if all(min(trace.ids[t, layer]) >= 0 for layer in range(trace.n_layer))]
    return trace, [[trace.ids[t, layer].tolist() for t in tokens] for layer in range(trace.n_layer)]


def direct_coverage(rows: list[list[int]], n_top: int) -> float:
    counts = Counter(e for row in rows for e in row)
    return sum(sorted(counts.values(), reverse=True)[:n_top]) / sum(counts.values())


def direct_static(rows: list[list[int]], profile_rows: list[list[int]], n_hot: int) -> float:
    counts = Counter(e for row in profile_rows for e in row)
    hot = set(sorted(counts, key=lambda e: (-counts[e], e))[:n_hot])
    return sum(e in hot for row in rows for e in row) / sum(len(row) for row in rows)


def direct_lru(rows: list[list[int]], capacity: int) -> float:
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for row in rows:
        hits += sum(e in cache for e in row)
        for e in reversed(row):  # top-1 ends most recent
            cache[e] = None
            cache.move_to_end(e)
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits / sum(len(row) for row in rows)


def direct_decayed(rows: list[list[int]], capacity: int, half_life: float) -> float:
    scores: dict[int, float] = {}
    cached: set[int] = set()
    hits = 0
    for row in rows:
        hits += sum(e in cached for e in row)
        scores = {e: s * 2 ** (-1 / half_life) for e, s in scores.items()}
        for e in row:
            scores[e] = scores.get(e, 0.0) + 1
        cached = set(sorted(scores, key=lambda e: (-scores[e], e))[:capacity])
    return hits / sum(len(row) for row in rows)


def direct_optimal(rows: list[list[int]], capacity: int) -> float:
    """Belady's rule: filled with the experts selected first, then after each token the experts held or just selected that
    are selected again soonest (ties to the lower id; none never selected again)."""
    uses: dict[int, list[int]] = {}
    for t, row in enumerate(rows):
        for e in row:
            uses.setdefault(e, []).append(t)

    def next_use(e: int, t: int) -> int:
        i = bisect.bisect_left(uses[e], t)
        return uses[e][i] if i < len(uses[e]) else len(rows)

    def soonest(experts: set[int], t: int) -> set[int]:
        ranked = sorted((next_use(e, t), e) for e in experts)
        return {e for u, e in ranked[:capacity] if u < len(rows)}

    cached = soonest({e for row in rows for e in row}, 0)
    hits = 0
    for t, row in enumerate(rows):
        hits += sum(e in cached for e in row)
        cached = soonest(cached | set(row), t + 1)
    return hits / sum(len(row) for row in rows)


def direct_adaptive(rows: list[list[int]], profile_rows: list[list[int]], n_hot: int, n_expert: int, rule: dict) -> tuple[float, int]:
    """The hit rate and the swaps of patch 0004's adaptive set with 0010's, 0015's and 0056's rule, started from the static set."""
    counts = Counter(e for row in profile_rows for e in row)
    hot = set(sorted(range(n_expert), key=lambda e: (-counts[e], e))[:n_hot])
    score = [0.0] * n_expert
    hits = swaps = 0
    for t, row in enumerate(rows, 1):
        hits += sum(e in hot for e in row)
        for e in row:
            score[e] += 1
        if t % rule["every"]:
            continue
        for _ in range(4):  # at most 4 swaps a layer and update
            c = min((e for e in range(n_expert) if e not in hot), key=lambda e: (-score[e], e), default=None)
            h = min(hot, key=lambda e: (score[e], e), default=None)
            if c is None or h is None:
                break
            lead = score[c] - score[h]
            if not (score[c] > rule["ratio"] * score[h] + rule["margin"] and lead > rule["noise"] * math.sqrt(score[c] + score[h])):
                break
            hot = hot - {h} | {c}
            swaps += 1
        score = [s * rule["decay"] for s in score]
    return hits / sum(len(row) for row in rows), swaps


def direct_worker_layers(hit_rates: list[float], n_used: int) -> int:
    """The layers with 0.2 cold selections a token or more (the engine's LLAMA_MOE_WORKER_MIN_COLD since patch 0054)."""
    return sum(n_used * (1 - hit) >= 0.2 for hit in hit_rates)


def direct_reuse_median(per_layer: list[list[list[int]]]) -> float:
    distances = []
    for rows in per_layer:
        last: dict[int, int] = {}
        for t, row in enumerate(rows):
            for e in row:
                if e in last:
                    distances.append(t - last[e])
                last[e] = t
    return statistics.median(distances)


def assert_matches_direct_count(stats: dict, path: Path, profile: Path | None = None) -> None:
    trace, per_layer = routed_rows(path)
    profile_layers = routed_rows(profile)[1] if profile else per_layer
    assert stats["tokens"] == len(per_layer[0])
    for c in stats["coverage"]:
        assert c["per_layer"] == pytest.approx([direct_coverage(rows, c["experts"]) for rows in per_layer])
    direct = {
        "static": lambda rows, layer, n: direct_static(rows, profile_layers[layer], n),
        "lru": lambda rows, layer, n: direct_lru(rows, n),
        "decayed-frequency": lambda rows, layer, n: direct_decayed(rows, n, stats["decay_half_life_tokens"]),
        "optimal": lambda rows, layer, n: direct_optimal(rows, n),
    }
    for c in stats["caches"]:
        if c["policy"] == "adaptive":
            runs = [direct_adaptive(rows, profile_layers[layer], c["experts"], trace.n_expert, stats["adapt"])
                    for layer, rows in enumerate(per_layer)]
            assert c["per_layer"] == pytest.approx([hit for hit, _ in runs])
            assert c["swaps_per_token"] == pytest.approx(sum(swaps for _, swaps in runs) / len(per_layer[0]))
            assert c["worker_layers"] == direct_worker_layers([hit for hit, _ in runs], trace.n_expert_used)
            continue
        expected = [direct[c["policy"]](rows, layer, c["experts"]) for layer, rows in enumerate(per_layer)]
        assert c["per_layer"] == pytest.approx(expected), c["policy"]
        if c["policy"] == "static":
            assert c["worker_layers"] == direct_worker_layers(expected, trace.n_expert_used)
    assert stats["reuse_distance_tokens"]["median"] == direct_reuse_median(per_layer)
    windows = len(per_layer[0]) // 32
    distinct = [statistics.mean(len({e for row in rows[w * 32:(w + 1) * 32] for e in row}) for w in range(windows))
                for rows in per_layer]
    assert stats["distinct_per_32_tokens"]["per_layer"] == pytest.approx(distinct)


# ---------------------------------------------------------------- trace-stats


def test_statistics_equal_a_direct_count(tmp_path, capsys):
    path = skewed_trace(tmp_path / "t.moetrace")
    stats = stats_json(capsys, path)
    assert stats["cache_profile"] == "in-sample"
    assert_matches_direct_count(stats, path)
    # in-sample static hit rate is the coverage; LRU and decayed frequency differ from it on this trace
    by_share = {c["share"]: c["mean"] for c in stats["coverage"]}
    static = [c for c in stats["caches"] if c["policy"] == "static"]
    assert [c["mean"] for c in static] == pytest.approx([by_share[c["share"]] for c in static])


@pytest.mark.parametrize("seed", range(4))
def test_no_policy_hits_more_often_than_the_optimal_cache(tmp_path, capsys, seed):
    # Belady's rule knows the routing ahead: at every share and in every layer it is the ceiling of the static set (in-sample
    # too), the LRU, the decayed frequency and the adaptive set (one that swaps often here), and the LRU stays below it
    path = skewed_trace(tmp_path / "t.moetrace", seed=seed)
    stats = stats_json(capsys, path, "--adapt-every", 4, "--adapt-ratio", 1.25, "--adapt-noise", 0)
    for share in {c["share"] for c in stats["caches"]}:
        rows = {c["policy"]: c["per_layer"] for c in stats["caches"] if c["share"] == share}
        optimal = rows.pop("optimal")
        for policy, rates in rows.items():
            assert all(o >= r for o, r in zip(optimal, rates)), (share, policy)
        if share < 0.75:
            assert sum(optimal) > sum(rows["lru"]), share


def test_the_optimal_cache_keeps_what_is_selected_again_soonest(tmp_path, capsys):
    # one expert a token, room for two: A B C A B A C. Filled with A and B: A and B hit; C misses and is not kept (A and B
    # come again before it); A and B hit, then B is dropped (never again), A hits, C misses: 5 of 7. The LRU, empty at
    # the start and always holding the two last: 1 of 7
    ids = np.array([[[e]] for e in (0, 1, 2, 0, 1, 0, 2)], dtype=np.int16)
    write_trace(Trace(1, 4, 1, ids), tmp_path / "t.moetrace")
    stats = stats_json(capsys, tmp_path / "t.moetrace")
    rates = {c["policy"]: c["mean"] for c in stats["caches"] if c["experts"] == 2}
    assert rates["optimal"] == pytest.approx(5 / 7)
    assert rates["lru"] == pytest.approx(1 / 7)


def test_static_profile_from_another_trace_and_another_half_life(tmp_path, capsys):
    path, profile = skewed_trace(tmp_path / "t.moetrace", seed=1), skewed_trace(tmp_path / "p.moetrace", seed=2)
    stats = stats_json(capsys, path, "--profile", profile, "--half-life", 4)
    assert stats["cache_profile"] == str(profile) and stats["decay_half_life_tokens"] == 4
    assert_matches_direct_count(stats, path, profile)


def test_text_output_labels_the_in_sample_profile(tmp_path, capsys):
    assert main(["trace-stats", str(skewed_trace(tmp_path / "t.moetrace"))]) == 0
    out = capsys.readouterr().out
    assert "hot set from in-sample, an upper bound" in out and "hit rate lru" in out


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_traces_equal_a_direct_count(path, capsys):
    assert_matches_direct_count(stats_json(capsys, path), path)


def test_the_adaptive_set_with_another_rule_equals_a_direct_count(tmp_path, capsys):
    path, profile = skewed_trace(tmp_path / "t.moetrace", seed=1), skewed_trace(tmp_path / "p.moetrace", seed=2)
    stats = stats_json(capsys, path, "--profile", profile, "--adapt-every", 4, "--adapt-ratio", 1.25, "--adapt-noise", 0,
                       "--adapt-decay", 0.75)
    assert stats["adapt"] == {"every": 4, "ratio": 1.25, "margin": 1.0, "noise": 0.0, "decay": 0.75}
    assert_matches_direct_count(stats, path, profile)
    assert any(c["swaps_per_token"] > 0 for c in stats["caches"] if c["policy"] == "adaptive")


def test_an_adaptive_set_that_never_swaps_is_the_static_set(tmp_path, capsys):
    stats = stats_json(capsys, skewed_trace(tmp_path / "t.moetrace"), "--adapt-noise", 1e9)
    by_policy = {(c["policy"], c["share"]): c for c in stats["caches"]}
    for share in (0.125, 0.25, 0.5, 0.75):
        assert by_policy["adaptive", share]["swaps_per_token"] == 0
        assert by_policy["adaptive", share]["per_layer"] == by_policy["static", share]["per_layer"]


def test_on_learned_routing_the_adaptive_set_beats_a_profile_of_other_text(capsys):
    traces = ROOT / "regress" / "traces"
    stats = stats_json(capsys, traces / "learned-prose.moetrace.xz", "--profile", traces / "learned-poems.moetrace.xz")
    by_policy = {(c["policy"], c["share"]): c["mean"] for c in stats["caches"]}
    for share in (0.125, 0.25, 0.5):
        assert by_policy["adaptive", share] > by_policy["static", share] + 0.02


# ---------------------------------------------------------------- bad input


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("error: ") and err[1].startswith("hint: ")
    return err[0]


def test_tokens_counts_the_first_routed_tokens_as_a_trace_of_them_alone(tmp_path, capsys):
    # --tokens 100 of a 300-token trace: every statistic, the in-sample profile included, is that of a trace holding
    # only its first 100 routed tokens, and differs from the whole trace's
    path = skewed_trace(tmp_path / "t.moetrace", seed=3)
    cut = tmp_path / "cut.moetrace"
    write_trace(take_tokens(read_routed(path), 0, 100), cut)
    first, alone, whole = stats_json(capsys, path, "--tokens", 100), stats_json(capsys, cut), stats_json(capsys, path)
    assert first["tokens"] == 100 and first["trace_tokens"] == whole["tokens"] > 100 and alone["trace_tokens"] == 100
    for key in ("caches", "coverage", "distinct_per_32_tokens", "reuse_distance_tokens"):
        assert first[key] == alone[key] != whole[key], key
    assert main(["trace-stats", str(path), "--tokens", "100"]) == 0
    assert f"the first 100 of {whole['tokens']} routed tokens" in capsys.readouterr().out


@pytest.mark.parametrize("n_tokens", ["0", "100000"])
def test_refuses_more_tokens_than_the_trace_routed_or_none(tmp_path, capsys, n_tokens):
    path = skewed_trace(tmp_path / "t.moetrace")
    routed = read_routed(path).n_tokens
    assert main(["trace-stats", str(path), "--tokens", n_tokens]) == 2
    assert one_error_line(capsys) == f"error: --tokens {n_tokens}: {path} has {routed} routed tokens"


def test_refuses_a_file_that_is_not_a_trace(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a trace at all\n")
    assert main(["trace-stats", str(bad)]) == 2
    assert str(bad) in one_error_line(capsys)


def test_refuses_a_truncated_trace(tmp_path, capsys):
    path = skewed_trace(tmp_path / "t.moetrace")
    cut = tmp_path / "cut.moetrace"
    cut.write_bytes(path.read_bytes()[:-3])
    assert main(["trace-stats", str(cut)]) == 2
    line = one_error_line(capsys)
    assert str(cut) in line and "truncated" in line


def test_refuses_a_profile_of_another_model_shape(tmp_path, capsys):
    path = skewed_trace(tmp_path / "t.moetrace")
    other = skewed_trace(tmp_path / "other.moetrace", n_expert=32)
    assert main(["trace-stats", str(path), "--profile", str(other)]) == 2
    line = one_error_line(capsys)
    assert str(other) in line and "another model shape" in line


@pytest.mark.parametrize("flag, value", [("--adapt-every", "0"), ("--adapt-ratio", "0.5"), ("--adapt-noise", "-1"),
                                         ("--adapt-decay", "1"), ("--adapt-decay", "-0.1")])
def test_refuses_an_adaptive_rule_the_engine_would_refuse(tmp_path, capsys, flag, value):
    assert main(["trace-stats", str(skewed_trace(tmp_path / "t.moetrace")), flag, value]) == 2
    assert "is out of range, as the engine would refuse it" in one_error_line(capsys)


def test_refuses_a_missing_file(tmp_path, capsys):
    assert main(["trace-stats", str(tmp_path / "nope.moetrace")]) == 2
    assert "cannot read" in one_error_line(capsys)


# ---------------------------------------------------------------- trace-flatten


def test_flattened_trace_has_the_asked_coverage_and_mixes_rows(tmp_path, capsys):
    path, flat = skewed_trace(tmp_path / "t.moetrace", n_tokens=2000), tmp_path / "flat.moetrace"
    before = stats_json(capsys, path)["coverage"][1]["mean"]  # top 25%
    assert main(["trace-flatten", str(path), "--coverage", "0.45", "--at", "0.25", "-o", str(flat)]) == 0
    capsys.readouterr()
    assert before > 0.5
    stats = stats_json(capsys, flat)
    assert stats["coverage"][1]["mean"] == pytest.approx(0.45, abs=0.01)
    original, mixed = routed_rows(path)[0], read_trace(flat)
    kept = np.asarray([r.tolist() for r in original.ids if (r >= 0).all()])
    same = (mixed.ids == kept).all(axis=2)
    assert 0.05 < 1 - same.mean() < 0.95  # some rows replaced, some kept
    assert all(len(set(row)) == len(row) for row in mixed.ids.reshape(-1, mixed.n_expert_used).tolist())


def test_flatten_refuses_a_coverage_above_the_recorded_one(tmp_path, capsys):
    path = skewed_trace(tmp_path / "t.moetrace")
    assert main(["trace-flatten", str(path), "--coverage", "0.999", "--at", "0.25", "-o", str(tmp_path / "f")]) == 2
    assert "outside what mixing can give" in one_error_line(capsys)
    assert not (tmp_path / "f").exists()


def test_the_adaptive_hot_set_swaps_in_a_clearly_better_expert_at_each_update():
    # one layer, 4 experts, one used; expert 0 starts hot, the router picks expert 2 throughout; noise 0: the rule before 0015
    ids = np.full((6, 1, 1), 2, dtype=np.int16)
    rates, swaps = hysteresis_hit_rates(ids, 4, [[0]], every=3, noise=0.0)
    assert swaps == 1 and rates == [0.5]  # after 3 tokens expert 2 (score 3 > 1.25 * 0 + 1) replaces 0
    rates, swaps = hysteresis_hit_rates(ids, 4, [[0]], every=3, margin=3.0, noise=0.0)
    # 3 is not above 1.25 * 0 + 3 at the first update; halved to 1.5, plus 3, it is at the second (after the last token)
    assert swaps == 1 and rates == [0.0]
    ids = np.array([[[1]], [[2]], [[3]], [[1]], [[2]], [[3]]], dtype=np.int16)
    _, swaps = hysteresis_hit_rates(ids, 4, [[0]], every=6, margin=0.5, max_swaps=4, noise=0.0)
    assert swaps == 1  # one slot: after the first swap the worst hot expert is as good as the best cold one


def test_a_swap_needs_a_lead_beyond_the_noise_of_the_counts():
    ids = np.full((16, 1, 1), 2, dtype=np.int16)
    rates, swaps = hysteresis_hit_rates(ids, 4, [[0]], every=8)
    assert swaps == 1 and rates == [0.5]  # at the first update 8 - 0 > 2.5 * sqrt(8) = 7.07
    rates, swaps = hysteresis_hit_rates(ids, 4, [[0]], every=8, noise=3.0)
    # 8 is not above 3 * sqrt(8) = 8.49; at the second update 4 + 8 = 12 is above 3 * sqrt(12) = 10.4 (after the last token)
    assert swaps == 1 and rates == [0.0]


def test_a_slower_decay_remembers_the_updates_before():
    # expert 2 is selected in the first 8 tokens only, then expert 3 throughout: expert 0 starts hot, ratio 1, margin 1, no noise
    ids = np.array([2] * 8 + [3] * 8 + [1] * 8, dtype=np.int16).reshape(24, 1, 1)
    _, swaps = hysteresis_hit_rates(ids, 4, [[0]], every=8, ratio=1.0, noise=0.0, decay=0.0)
    assert swaps == 3  # each update sees its own 8 tokens alone: 2, then 3, then 1 replace the hot expert
    _, swaps = hysteresis_hit_rates(ids, 4, [[0]], every=8, ratio=1.0, noise=0.0, decay=0.9)
    # 2 (score 8) replaces 0; at the second update 3's 8 is not above 2's remembered 7.2 + 1; at the third 1's 8 is above
    # 2's 6.48 + 1 (3's 7.2 is the second best cold score)
    assert swaps == 2


def test_routing_without_locality_barely_swaps_with_the_noise_rule():
    # 64 experts, 8 used, uniform: no expert is better than another, every swap is a wasted copy
    rng = np.random.default_rng(0)
    ids = np.stack([rng.choice(64, 8, replace=False) for _ in range(512)]).astype(np.int16).reshape(512, 1, 8)
    hot = [list(range(16))]
    _, swaps_before = hysteresis_hit_rates(ids, 64, hot, every=8, noise=0.0)
    _, swaps = hysteresis_hit_rates(ids, 64, hot, every=8)
    assert swaps_before > 100 and swaps < swaps_before / 10
