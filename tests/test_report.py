"""Parsers, thresholds and renderings of the regress report, on outputs recorded from real runs (tests/data/regress)."""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.report.html import render_html
from builder.report.markdown import render_markdown
from builder.report.parse import (ParseError, parse_bench, parse_decode, parse_kld, parse_model_info,
                                  parse_perplexity)
from builder.report.schema import SCHEMA, Configuration, HotExperts, Routing, load_report
from builder.report.svg import Series, bar_chart, line_chart
from builder.report.thresholds import DEFAULT_PATH, check_model, load_thresholds

DATA = Path(__file__).parent / "data" / "regress"


def read(name: str) -> str:
    return (DATA / name).read_text()


# ---------------------------------------------------------------- llama-perplexity


def test_upstream_perplexity_and_model_shape():
    run = parse_perplexity(read("perplexity-upstream.log"))
    assert (run.ppl, run.chunks, run.n_ctx) == (175718.4429, 2, 128)
    info = parse_model_info(read("perplexity-upstream.log"))
    assert (info.arch, info.n_layer, info.n_expert, info.n_expert_used) == ("qwen3moe", 4, 16, 4)


def test_a_perplexity_run_that_lost_its_last_lines_gives_its_last_chunks_estimate():
    # upstream's logger may die at exit with the final lines (llama.cpp #22142): the last chunk's running estimate is the same
    text = read("perplexity-upstream.log")
    lost = text[:text.index("Final estimate")]
    assert parse_perplexity(lost).ppl == parse_perplexity(text).ppl == 175718.4429
    with pytest.raises(ParseError, match="Final estimate"):
        parse_perplexity(lost[:lost.index("[2]")])  # the second chunk lost too: no estimate of both


def test_dense_model_has_no_experts():
    info = parse_model_info(read("perplexity-gemma-upstream.log"))
    assert (info.arch, info.n_layer, info.n_expert) == ("gemma3", 18, 0)
    assert parse_perplexity(read("perplexity-gemma-upstream.log")).ppl == pytest.approx(20.3459)


def test_identical_logits_give_zero_divergence():
    k = parse_kld(read("kld-identical.log"))
    assert k.mean_kld == 0.0 and k.max_kld == 0.000001 and k.same_top == 1.0 and k.rms_dp == 0.0
    assert k.ppl == pytest.approx(175718.442915) and k.ppl_ratio == 1.0 and (k.chunks, k.n_ctx) == (2, 128)
    # the PPL over the same tokens equals the upstream run's own estimate
    assert k.ppl == pytest.approx(parse_perplexity(read("perplexity-upstream.log")).ppl, rel=1e-9)


def test_different_weights_give_real_divergence():
    k = parse_kld(read("kld-q8-vs-q4.log"))
    assert (k.mean_kld, k.kld_p99, k.max_kld) == (0.514869, 0.538929, 0.540127)
    assert k.ppl == 176647.932372 and k.ppl_base == 175718.472175 and k.ppl_ratio == 1.005289
    assert k.same_top == 0.0 and k.rms_dp == pytest.approx(0.00001)


def test_too_few_tokens_for_statistics_names_the_fix():
    with pytest.raises(ParseError, match="printed no statistics") as exc:
        parse_kld(read("kld-too-few-tokens.log"))
    assert "--chunks" in exc.value.hint


def test_decode_timing_is_the_one_token_steps():
    d = parse_decode(read("decode.log"))
    assert (d.tokens, d.ms, d.tokens_per_second) == (31, 924.66, 33.53)


def test_missing_lines_are_named():
    with pytest.raises(ParseError, match="Final estimate"):
        parse_perplexity("perplexity: calculating perplexity over 2 chunks, n_ctx=128\n")
    with pytest.raises(ParseError, match="timed no decode step"):
        parse_decode(read("perplexity-upstream.log"))  # no --perf: "0.00 ms / 1 runs"
    with pytest.raises(ParseError, match="eval time"):
        parse_decode(read("kld-identical.log").replace("eval time", "eval"))
    with pytest.raises(ParseError, match="chunks"):
        parse_kld("error: failed to open\n")


# ---------------------------------------------------------------- llama-bench


@pytest.mark.parametrize("name", ["bench-jsonl.log", "bench.json"])
def test_bench_tests_and_speeds(name):
    runs = parse_bench(read(name))
    assert [r.test for r in runs] == ["pp32", "tg8"]
    assert all(r.build_commit == "upstream" and r.tokens_per_second > 0 and len(r.samples_ts) == 2 for r in runs)


def test_bench_values_match_its_records():
    records = json.loads(read("bench.json"))
    assert [r.tokens_per_second for r in parse_bench(read("bench.json"))] == [r["avg_ts"] for r in records]


def test_bench_without_results():
    with pytest.raises(ParseError, match="no JSON results"):
        parse_bench("main: error: failed to load model\n")


# ---------------------------------------------------------------- thresholds


@pytest.fixture
def report():
    """A real run with both patches, trace routing and the baseline build: passed."""
    return load_report(DATA / "report-cpu.json")


@pytest.fixture
def noisy():
    """A real run (patch 0001 only, before routing control) on a busy machine: five speed checks failed on noise."""
    return load_report(DATA / "report-cpu-noisy.json")


def test_shipped_thresholds_load():
    t = load_thresholds()
    assert t.path == DEFAULT_PATH and t.default["mean_kld"] == 1e-4 and t.default["tg_ratio"] == 0.97
    assert t.bounds("feature-off", dense=True)["mean_kld"] == 1e-5
    assert t.bounds("feature-off", dense=False)["delta_ppl"] == 0.001


def write_thresholds(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text("schema = 1\n" + body)
    return path


@pytest.mark.parametrize("name", ["report-cpu.json", "report-cpu-noisy.json"])
def test_recorded_checks_reproduce(name):
    recorded = load_report(DATA / name)
    assert recorded.schema == SCHEMA and len(recorded.checks) == 12
    for model in recorded.models:
        assert check_model(model, load_thresholds()) == [c for c in recorded.checks if c.model == model.name]
    assert recorded.passed == all(c.passed for c in recorded.checks)


def test_recorded_failures_are_speed_noise(noisy):
    assert not noisy.passed
    failed = {(c.model, c.metric) for c in noisy.checks if not c.passed}
    assert failed == {("qwen3moe", "pp_ratio"), ("qwen3moe", "tg_ratio"), ("gemma-3-270m-q4_k_m", "pp_ratio"),
                      ("gemma-3-270m-q4_k_m", "tg_ratio"), ("gemma-3-270m-q4_k_m", "decode_ratio")}
    assert all(c.passed for c in noisy.checks if c.metric in ("delta_ppl", "mean_kld", "same_top"))


def test_each_regressed_metric_is_named_with_value_and_threshold(report, tmp_path):
    strict = load_thresholds(write_thresholds(tmp_path, "[default]\nmean_kld = -1\n[configurations.feature-off]\ntg_ratio = 100\n"))
    model = next(m for m in report.models if m.speed)
    failed = [c for c in check_model(model, strict) if not c.passed]
    assert {c.metric for c in failed} == {"mean_kld", "tg_ratio"}
    tg = next(c for c in failed if c.metric == "tg_ratio")
    assert tg.threshold == 100 and tg.bound == "min"
    assert tg.describe() == f"{model.name} / feature-off: tg_ratio = {tg.value:.6g} (needs >= 100) REGRESSED"


def test_layers_override_in_order(tmp_path):
    t = load_thresholds(write_thresholds(tmp_path, "[default]\nmean_kld = 1\ntg_ratio = 0.9\n[dense]\nmean_kld = 2\n"
                                                   "[configurations.x]\nmean_kld = 3\n"))
    assert t.bounds("y", dense=False) == {"mean_kld": 1, "tg_ratio": 0.9}
    assert t.bounds("y", dense=True)["mean_kld"] == 2
    assert t.bounds("x", dense=True) == {"mean_kld": 3, "tg_ratio": 0.9}


def test_a_bounded_metric_missing_from_the_results_fails(report):
    model = next(m for m in report.models if m.speed)
    no_tg = dataclasses.replace(model, speed=[s for s in model.speed if not s.test.startswith("tg")])
    missing = [c for c in check_model(no_tg, load_thresholds()) if c.value is None]
    assert {(c.configuration, c.metric) for c in missing} == {(a.configuration, "tg_ratio") for a in model.accuracy}
    assert not any(c.passed for c in missing)
    assert missing[0].describe().endswith("tg_ratio was not measured (needs >= 0.97) MISSING")


def test_speed_metrics_are_not_expected_without_speed_runs(report):
    model = next(m for m in report.models if m.speed)
    accuracy_only = dataclasses.replace(model, speed=[], speed_reference=None)
    checks = check_model(accuracy_only, load_thresholds())
    assert checks and all(c.passed for c in checks)
    assert {c.metric for c in checks} == {"delta_ppl", "mean_kld", "same_top"}


def test_nan_never_passes(report):
    model = report.models[0]
    broken = dataclasses.replace(model, accuracy=[dataclasses.replace(model.accuracy[0], mean_kld=math.nan)])
    [kld] = [c for c in check_model(broken, load_thresholds()) if c.metric == "mean_kld"]
    assert not kld.passed


@pytest.mark.parametrize("body, message", [
    ("[default]\nmean_kl = 1\n", "unknown metric 'mean_kl'"),
    ("[default]\nmean_kld = 'small'\n", "is not a number"),
    ("[fast]\n", "unknown section"),
])
def test_bad_thresholds_are_refused(tmp_path, body, message):
    with pytest.raises(UsageError, match=message):
        load_thresholds(write_thresholds(tmp_path, body))


def test_thresholds_schema_is_checked(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("schema = 2\n")
    with pytest.raises(UsageError, match="schema 2"):
        load_thresholds(path)


# ---------------------------------------------------------------- renderings


@pytest.mark.parametrize("name", ["report-cpu.json", "report-cpu-noisy.json"])
def test_report_round_trips(name):
    assert load_report(DATA / name).to_json() == (DATA / name).read_text()


def test_other_schemas_are_refused(tmp_path):
    data = json.loads((DATA / "report-cpu.json").read_text())
    (tmp_path / "r.json").write_text(json.dumps({**data, "schema": SCHEMA + 1}))
    with pytest.raises(UsageError, match=f"schema {SCHEMA}"):
        load_report(tmp_path / "r.json")


def test_markdown_of_a_failed_run_lists_each_regressed_metric(noisy):
    md = render_markdown(noisy)
    assert md.startswith(f"## ❌ experts-first regression: {noisy.variant}")
    assert "FAILED: 5 metric(s) regressed" in md
    for check in noisy.checks:
        assert (f"- {check.describe()}" in md) == (not check.passed)


def test_markdown_has_verdict_versions_and_every_figure(report):
    md = render_markdown(report)
    assert md.startswith(f"## ✅ experts-first regression: {report.variant}") and "**PASSED" in md
    for role, build in report.builds.items():
        assert f"| {role} | {build.variant} |" in md
    assert report.machine.cpu in md
    speed_section = md[md.index("### Speed"):]
    rows = {"qwen3moe": "| trace | 15.31 (15.00–15.75) | baseline-cpu |",  # replayed trace, baseline reference
            "gemma-3-270m-q4_k_m": "| none (dense) | n/a | upstream-cpu |"}
    for model in report.models:
        for s in model.speed:  # every speed figure carries its routing and distinct-expert count
            assert f"| {model.name} | {s.configuration} | {s.test} {rows[model.name]}" in speed_section


def test_dense_layers_are_left_out_of_the_mean_distinct_count(report):
    moe = next(m for m in report.models if not m.dense)
    traced = dataclasses.replace(moe, routing=Routing("trace", True, [0.0, 10.0, 12.0, 14.0], "t.moetrace"))
    assert "| trace | 12.00 (10.00–14.00) |" in render_markdown(dataclasses.replace(report, models=[traced]))




def test_html_is_self_contained_with_charts(report):
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    svgs = html.split("<svg")[1:]
    assert len(svgs) == 3 + 1 + 1 + 3 + 1  # per model: tokens/s vs budget per test, per-layer (MoE only), KLD
    assert "qwen3moe: distinct experts per 32 tokens (trace routing)" in html
    for chunk in svgs:
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # well-formed


def test_charts_are_valid_svg_with_odd_values():
    bar = bar_chart("t <&>", ["a", "b", "c"], [0.0, math.nan, 3.5], "y", reference=("limit", 2.0))
    line = line_chart("l", [Series("s1", [(0, 1.0), (1024, math.inf), (2048, 3.0)]), Series("empty", [])], "x", "y")
    for svg in (bar, line):
        assert ET.fromstring(svg).tag.endswith("svg")
    assert "t &lt;&amp;&gt;" in bar


def test_hot_configurations_render_budgets_hit_rates_and_charts(report):
    moe = next(m for m in report.models if not m.dense)
    hot = HotExperts("hot-25", 2, "t.moetrace", [4, 4, 4, 4], [0.5, 0.6, 0.7, 0.8])
    speed = [dataclasses.replace(s, configuration="hot-25", patched_ts=2 * s.patched_ts) for s in moe.speed]
    model = dataclasses.replace(moe, hot=[hot], speed=moe.speed + speed)
    hot_report = dataclasses.replace(report, models=[model],
                                     configurations=report.configurations + [Configuration("hot-25", "hot", 0.25)])
    md = render_markdown(hot_report)
    assert f"| {moe.name} | hot-25 | 2 | 4 of 16 | 65.0% (50.0%–80.0%) | t.moetrace |" in md
    html = render_html(hot_report)
    assert f"{moe.name}: hot-expert hit rate per layer (in-sample)" in html and "No configuration kept" not in html
    tg = next(s for s in speed if s.test.startswith("tg"))
    assert f"patched, hot: 2 → {tg.patched_ts:.6g}" in html  # the budget's point on the tokens/s-vs-budget chart
    assert f"patched, hot: 0 → " in html  # features off starts the hot line
