"""scripts/bench-placements.py's configurations and scripts/report-placements.py's summary, on a committed H200 run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from builder import hot_experts, moe_trace
from llama_tools import SCRIPTS, load_script

RUNS = Path(__file__).resolve().parent.parent / "reports" / "2026-12-02-executor-round" / "placements" / "runs.jsonl"


def committed_runs() -> tuple[list[dict], dict]:
    """The committed round's runs and its run of hot-gpu at learned 25 %, to derive made-up runs from."""
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    return runs, next(r for r in runs if (r["route"], r["budget_pct"], r["config"]) == ("learned", 25, "hot-gpu"))


def rendered(report, summary: dict, **meta) -> str:
    """report-placements' Markdown of a summary of one round on the 24-layer shape (meta: settings beside those)."""
    return report.render_md({**summary, "title": "t", "notes": [], "rounds": 1,
                             "meta": {"model": "m.gguf", "n_layer": 24, "expert_mib": 1.0, "chunks": 1, "threads": 8, "distinct_per_32": {},
                                      **meta}})


def test_each_configuration_has_its_flags_and_environment():
    bench = load_script("bench-placements")
    profile, replay = Path("p.bin"), Path("r.bin")
    # upstream's placements keep 4 KiB pinned pages where the fork's binary runs them (0031 puts its own in huge pages)
    upstream_pages = {"GGML_CUDA_NO_HUGE_PAGES": "1"}
    assert bench.placement_args("ncmoe", 1944, 18, profile, replay) == ("base", ["-ncmoe", "18"], upstream_pages)
    assert bench.placement_args("lru-pinned", 1944, 18, profile, replay) == ("base", ["--cpu-moe", "--moe-cache-mib", "1944", "-lm", "none"], upstream_pages)
    assert bench.placement_args("all-gpu", 1944, 18, profile, replay) == ("base", [], upstream_pages)
    variant, hot_gpu, env = bench.placement_args("hot-gpu", 1944, 18, profile, replay)
    assert (variant, env) == ("fork", {})
    # without the worker the fork starts by default with --moe-cold gpu (0032): the placements without one say so
    assert hot_gpu == ["--cpu-moe", "--moe-hot-mib", "1944", "--moe-hot-profile", "p.bin", "--moe-cold", "gpu", "--moe-cold-worker", "0",
                       "-lm", "none"]
    # every expert hot: counted by copies (all-hot) or read in one pass, a layer's count in its down node's kernel (all-hot-gpu)
    assert bench.placement_args("all-hot", 1944, 0, profile, replay) == ("fork", hot_gpu[:3], {})
    assert bench.placement_args("all-hot-gpu", 1944, 0, profile, replay) == ("fork", hot_gpu, {})
    assert bench.placement_args("hot-gpu-2p", 1944, 18, profile, replay) == ("fork", hot_gpu, {"LLAMA_MOE_HOT_TWO_PARTS": "1"})
    variant, hot_cpu, env = bench.placement_args("hot-cpu", 1944, 18, profile, replay)
    assert (variant, hot_cpu, env) == ("fork", ["--cpu-moe", "--moe-hot-mib", "1944", "--moe-hot-profile", "p.bin"], {"LLAMA_MOE_COLD_OVERLAP": "0"})
    assert bench.placement_args("hot-cpu-overlap", 1944, 18, profile, replay) == ("fork", hot_cpu, {"LLAMA_MOE_COLD_OVERLAP": "1"})
    hybrid = ["--cpu-moe", "--moe-hot-mib", "1944", "--moe-hot-profile", "p.bin", "--moe-cold", "hybrid", "-lm", "none"]
    assert bench.placement_args("hot-hybrid", 1944, 18, profile, replay) == ("fork", hybrid, {})
    assert bench.placement_args("hot-hybrid-70", 1944, 18, profile, replay) == ("fork", hybrid + ["--moe-cold-cpu-share", "0.7"], {})
    in_sample = [a if a != "p.bin" else "r.bin" for a in hot_gpu]
    assert bench.placement_args("hot-gpu-in", 1944, 18, profile, replay) == ("fork", in_sample, {})
    adapt = hot_gpu + ["--moe-hot-adapt", "32", "--moe-hot-adapt-ratio", "4"]
    old_rule = adapt + ["--moe-hot-adapt-noise", "0"]
    assert bench.placement_args("adapt-gpu-profile", 1944, 18, profile, replay) == ("fork", old_rule, {})
    assert bench.placement_args("adapt-gpu-m4", 1944, 18, profile, replay) == ("fork", old_rule + ["--moe-hot-adapt-margin", "4"], {})
    assert bench.placement_args("adapt-gpu-noise", 1944, 18, profile, replay) == ("fork", adapt, {})
    assert bench.placement_args("adapt-gpu-noise2", 1944, 18, profile, replay) == ("fork", adapt + ["--moe-hot-adapt-noise", "2"], {})
    assert bench.placement_args("adapt-hybrid", 1944, 18, profile, replay) == ("fork", hybrid + adapt[len(hot_gpu):], {})
    assert bench.placement_args("hot-gpu-top6", 1944, 18, profile, replay) == ("fork", hot_gpu + ["--moe-cold-top", "6"], {})
    assert bench.placement_args("hot-gpu-top4", 1944, 18, profile, replay) == ("fork", hot_gpu + ["--moe-cold-top", "4"], {})
    assert bench.placement_args("adapt-gpu-top6", 1944, 18, profile, replay) == ("fork", adapt + ["--moe-cold-top", "6"], {})
    assert bench.placement_args("hot-gpu-counted", 1944, 18, profile, replay) == ("fork", hot_gpu + ["--moe-hot-stats"], {})
    assert bench.placement_args("hot-gpu-counted-wait", 1944, 18, profile, replay) == (
        "fork", hot_gpu + ["--moe-hot-stats"], {"LLAMA_MOE_HOT_COUNT_WAIT": "1"})
    assert bench.placement_args("hot-gpu-counted-copy", 1944, 18, profile, replay) == (
        "fork", hot_gpu + ["--moe-hot-stats"], {"LLAMA_MOE_HOT_COUNT_COPY": "1"})
    ranked = ["--moe-prefetch", "1", "--moe-prefetch-route", "trace:k.bin"]
    assert bench.placement_args("hot-gpu-prefetch", 1944, 18, profile, replay, Path("k.bin")) == ("fork", hot_gpu + ranked, {})
    assert bench.placement_args("adapt-gpu-prefetch", 1944, 18, profile, replay, Path("k.bin")) == ("fork", adapt + ranked, {})
    oracle = ["--moe-prefetch", "1", "--moe-prefetch-route", "trace:r.bin"]
    assert bench.placement_args("hot-gpu-prefetch-oracle", 1944, 18, profile, replay) == ("fork", hot_gpu + oracle, {})
    assert bench.placement_args("adapt-gpu-prefetch-oracle", 1944, 18, profile, replay) == ("fork", adapt + oracle, {})
    two = ["--moe-prefetch", "2", "--moe-prefetch-route", "trace:r.bin"]
    assert bench.placement_args("hot-gpu-prefetch2-oracle", 1944, 18, profile, replay) == ("fork", hot_gpu + two, {})
    # the same, the copies started beside the layer before's experts (as before 0027)
    early = {"LLAMA_MOE_PREFETCH_EARLY": "1"}
    assert bench.placement_args("hot-gpu-prefetch-oracle-early", 1944, 18, profile, replay) == ("fork", hot_gpu + oracle, early)
    assert bench.placement_args("hot-gpu-prefetch2-oracle-early", 1944, 18, profile, replay) == ("fork", hot_gpu + two, early)
    # the next layer's router ranks them in the graph (0025): no ranking trace, whatever the route has
    for ranking in (None, Path("k.bin")):
        assert bench.placement_args("hot-gpu-prefetch-router", 1944, 18, profile, replay, ranking) == (
            "fork", hot_gpu + ["--moe-prefetch", "1"], {})
        assert bench.placement_args("hot-gpu-prefetch2-router", 1944, 18, profile, replay, ranking) == (
            "fork", hot_gpu + ["--moe-prefetch", "2"], {})
        assert bench.placement_args("adapt-gpu-prefetch-router", 1944, 18, profile, replay, ranking) == (
            "fork", adapt + ["--moe-prefetch", "1"], {})
    no_graphs = {"GGML_CUDA_DISABLE_GRAPHS": "1"}
    assert bench.placement_args("hot-gpu-nographs", 1944, 18, profile, replay) == ("fork", hot_gpu, no_graphs)
    assert bench.placement_args("hot-gpu-counted-nographs", 1944, 18, profile, replay) == ("fork", hot_gpu + ["--moe-hot-stats"], no_graphs)
    worker = bench.placement_args("hot-gpu-worker", 1944, 18, profile, replay)[1]
    auto = worker[:-1] + ["auto"]
    assert worker[-2:] == ["--moe-cold-cpu-share", "0.5"]
    assert bench.placement_args("hot-gpu-worker-auto", 1944, 18, profile, replay) == ("fork", auto, {})
    adapt_worker = bench.placement_args("adapt-gpu-worker", 1944, 18, profile, replay)[1]
    assert bench.placement_args("adapt-gpu-worker-auto", 1944, 18, profile, replay) == (
        "fork", auto + adapt_worker[len(worker):], {})
    # the CPU backend's threads: the last -t counts, and the command puts --threads' before the configuration's arguments
    assert bench.placement_args("hot-gpu-worker-cput4", 1944, 18, profile, replay) == ("fork", worker + ["-t", "4"], {})
    assert bench.placement_args("adapt-gpu-worker-cput4", 1944, 18, profile, replay) == ("fork", adapt_worker + ["-t", "4"], {})
    sleeps = {"LLAMA_MOE_WORKER_POLL_US": "0"}
    assert bench.placement_args("hot-gpu-worker-sleep", 1944, 18, profile, replay) == ("fork", worker, sleeps)
    assert bench.placement_args("adapt-gpu-worker-sleep", 1944, 18, profile, replay) == ("fork", adapt_worker, sleeps)
    pinned = bench.placement_args("hot-gpu-worker-pinned", 1944, 18, profile, replay)
    assert pinned[:2] == ("fork", worker) and pinned[2] == bench.pinned_env(sorted(os.sched_getaffinity(0)))
    assert bench.placement_args("adapt-gpu-worker-pinned", 1944, 18, profile, replay) == ("fork", adapt_worker, pinned[2])
    # the backend's threads one a CPU on the lower half, the worker's on the upper half; one CPU is shared
    assert bench.pinned_env(list(range(16))) == {"OMP_PLACES": "{0}:8", "OMP_PROC_BIND": "close", "LLAMA_MOE_WORKER_CPUS": "8-15"}
    assert bench.pinned_env([4, 5, 6]) == {"OMP_PLACES": "{4}:1", "OMP_PROC_BIND": "close", "LLAMA_MOE_WORKER_CPUS": "5-6"}
    assert bench.pinned_env([3])["LLAMA_MOE_WORKER_CPUS"] == "3-3"
    planes = {"LLAMA_MOE_WORKER_DOWN_PLANE": "1"}
    for config in ("hot-gpu-worker-40", "adapt-gpu-worker-40"):
        _, args, env = bench.placement_args(config, 1944, 18, profile, replay)
        assert args[args.index("--moe-cold-cpu-share") + 1] == "0.4" and env == {}
        assert bench.placement_args(f"{config}-plane", 1944, 18, profile, replay) == ("fork", args, planes)
    assert set(bench.CONFIGS) <= set(load_script("report-placements").LABELS)


def test_a_worker_of_four_threads_runs_with_its_share_fixed_and_moved():
    # a slow worker on any host, for the A/B that --moe-cold-cpu-share auto is made for
    bench, report = load_script("bench-placements"), load_script("report-placements")
    profile, replay = Path("p.bin"), Path("r.bin")
    eight = bench.placement_args("adapt-gpu-worker", 1944, 18, profile, replay)[1]
    threads, share = eight.index("--moe-cold-worker") + 1, eight.index("--moe-cold-cpu-share") + 1
    four = [("4" if i == threads else arg) for i, arg in enumerate(eight)]
    assert eight[threads] == "8" and eight[share] == "0.5"
    assert bench.placement_args("adapt-gpu-worker-t4", 1944, 18, profile, replay) == ("fork", four, {})
    assert bench.placement_args("adapt-gpu-worker-t4-auto", 1944, 18, profile, replay) == (
        "fork", [("auto" if i == share else arg) for i, arg in enumerate(four)], {})
    assert ("adapt-gpu-worker-t4-auto", "adapt-gpu-worker-t4") in report.PAIRS
    assert {"adapt-gpu-worker-t4", "adapt-gpu-worker-t4-auto"} <= set(report.ADAPTIVE) & set(report.WORKER)


def test_every_named_configuration_and_reference_has_its_arguments():
    bench = load_script("bench-placements")
    for name in (*bench.CONFIGS, *bench.REFERENCES):
        variant, args, env = bench.placement_args(name, 1944, 18, Path("p.bin"), Path("r.bin"), Path("k.bin"))
        assert variant in ("fork", "base") and isinstance(args, list) and isinstance(env, dict), name


@pytest.mark.parametrize("option, value, unknown", [("--configs", "adapt-gpu-worker,adapt-gpu-wroker", "adapt-gpu-wroker"),
                                                    ("--refs", "all-gpu,all-cpu", "all-cpu")])
def test_an_unknown_configuration_is_refused_before_anything_runs(tmp_path, option, value, unknown):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, SCRIPTS / "bench-placements.py", "--model", tmp_path / "missing.gguf", "--text",
                           tmp_path / "missing.txt", "--route", "learned=r.bin:p.bin", option, value, "--out", out],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"error: {option} {value}: no configuration named {unknown}; pass some of: " in proc.stderr
    assert not out.exists()


def test_the_in_sample_static_set_is_a_bound_not_the_forks_best_placement():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    learned_75 = next(r for r in runs if (r["route"], r["budget_pct"], r["config"]) == ("learned", 75, "hot-gpu"))
    runs.append({**learned_75, "config": "hot-gpu-in", "tokens_per_s": 1000.0})
    summary = report.summarise(runs)
    row = next(c for c in summary["comparisons"] if (c["route"], c["budget_pct"]) == ("learned", 75))
    assert row["best_fork"] != "hot-gpu-in"
    adaptive = next(a for a in summary["adaptive"] if (a["route"], a["budget_pct"]) == ("learned", 75))
    assert adaptive["of_static_in"] == round(adaptive["tokens_per_s"] / 1000.0, 3)


def test_adaptive_is_compared_with_the_fastest_static_set_of_each_kind():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    learned_75 = next(r for r in runs if (r["route"], r["budget_pct"], r["config"]) == ("learned", 75, "hot-gpu"))
    # the worker's static sets faster than those without it; its in-sample one faster than any placement, yet a bound only
    for config, speed in (("hot-gpu-worker", learned_75["tokens_per_s"] * 2), ("hot-gpu-in", 900.0), ("hot-gpu-worker-in", 5000.0)):
        runs.append({**learned_75, "config": config, "tokens_per_s": speed})
    summary = report.summarise(runs)
    assert next(c for c in summary["comparisons"] if (c["route"], c["budget_pct"]) == ("learned", 75))["best_fork"] != "hot-gpu-worker-in"
    row = next(a for a in summary["adaptive"] if (a["route"], a["budget_pct"]) == ("learned", 75))
    assert (row["static_other"], row["static_in"]) == ("hot-gpu-worker", "hot-gpu-worker-in")
    assert row["of_static_other"] == round(row["tokens_per_s"] / round(learned_75["tokens_per_s"] * 2, 1), 3)
    assert row["of_static_in"] == round(row["tokens_per_s"] / 5000.0, 3)
    assert f"| {row['of_static_in']} (hot-gpu-worker-in) |" in rendered(report, summary)


def test_adaptive_is_compared_with_the_static_sets_it_ran_beside():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    speed = defaultdict(dict)
    for r in runs:
        speed[(r["route"], r["budget_pct"])][r["config"]] = round(r["tokens_per_s"], 1)
    rows = report.summarise(runs)["adaptive"]
    assert len(rows) == 9  # every routing and budget of that run had adaptive sets
    for row in rows:
        configs = speed[(row["route"], row["budget_pct"])]
        best = max(report.ADAPTIVE, key=lambda k: configs.get(k, 0))
        assert (row["adaptive"], row["tokens_per_s"]) == (best, configs[best])
        assert row["of_static_other"] == round(configs[best] / configs["hot-gpu"], 3)
        assert "of_static_in" not in row  # that run had no in-sample set
    text = rendered(report, report.summarise(runs))
    assert "| learned | 25% | adapt-gpu-profile |" in text and "not run |" in text
    assert "Decode: `llama-perplexity -c 512 --chunks 1 -b 1 -ub 1`" in text  # a run from before --ubatch


def test_the_adaptive_cells_give_the_swaps_per_token():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    adaptive = [r for r in runs if "swaps" in r]
    assert adaptive
    summary = report.summarise(runs)
    for r in adaptive:  # one round: a cell's median is its run
        cell = next(c for c in summary["cells"] if (c["route"], c["budget_pct"], c["config"]) == (r["route"], r["budget_pct"], r["config"]))
        assert cell["swaps_per_token"] == round(r["swaps"] / r["tokens"], 2)
    assert all("swaps_per_token" not in c for c in summary["cells"] if c["config"] in ("hot-gpu", "lru-pinned"))
    # runs since 2026-12-03 carry the routed tokens the swaps are over (llama-perplexity times only half of them)
    routed = report.summarise([{**r, "routed_tokens": 4 * r["tokens"]} for r in adaptive])
    for r in adaptive:
        cell = next(c for c in routed["cells"] if (c["route"], c["budget_pct"], c["config"]) == (r["route"], r["budget_pct"], r["config"]))
        assert cell["swaps_per_token"] == round(r["swaps"] / (4 * r["tokens"]), 2)
    text = rendered(report, summary)
    r = adaptive[0]
    assert f"hit {r['hit_rate']:.1f}%, {round(r['swaps'] / r['tokens'], 2)} swaps/token" in text


def test_the_worker_cells_give_its_time_a_job_and_the_gpus_wait_for_it():
    """Hosts differ most in the worker: its cells say what it cost there, so two reports' cells can be set side by side."""
    report = load_script("report-placements")
    runs = [json.loads(line) for line in (RUNS.parents[2] / "2026-12-07-series-0057-h100" / "placements" / "runs.jsonl").read_text().splitlines()]
    text = rendered(report, report.summarise(runs))
    r = next(r for r in runs if (r["route"], r["budget_pct"], r["config"]) == ("zipf", 25, "adapt-gpu-worker"))
    zipf = text.split("## zipf")[1].splitlines()
    row = next(line for line in zipf if line.startswith("| fork adaptive as adapt-gpu-noise, with the CPU worker"))
    assert f"worker {r['worker_us_per_job']:.0f} µs a job, the GPU waited {r['worker_recv_wait_us']:.0f} µs a job" in row
    lru = next(line for line in zipf if line.startswith("| upstream --moe-cache-mib"))
    assert "worker" not in lru


def test_a_prompt_processing_run_is_reported_as_one():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    meta = {"model": "m.gguf", "n_layer": 24, "expert_mib": 1.0, "chunks": 4, "threads": 8, "ubatch": 512, "distinct_per_32": {}}
    summary = report.summarise(runs, report.measured(meta))
    text = report.render_md({**summary, "title": "t", "notes": [], "rounds": 1, "meta": meta})
    assert "Prompt processing: `llama-perplexity -c 512 --chunks 4 -b 512 -ub 512`" in text and "Decode" not in text
    # issue 10 asks prompt processing for 1.0x upstream's best at every routing, not decode's 1.5x
    assert summary["comparisons"] and all(c["bar"] == c["upstream"] for c in summary["comparisons"])
    assert "## Prompt processing time against the static sets' misses" in "\n".join(report.miss_tables([
        {"route": "learned", "points": 3, "base_ms": 0.1, "per_miss_us": 1.8, "adaptive": []}], report.measured(meta)))


def test_the_comparison_is_the_best_of_each_side_per_routing_and_budget():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    summary = report.summarise(runs)
    # the same by hand: one round, so a cell's median is its run
    speed = defaultdict(dict)
    for r in runs:
        speed[(r["route"], r["budget_pct"])][r["config"]] = r["tokens_per_s"]
    rows = {(c["route"], c["budget_pct"]): c for c in summary["comparisons"]}
    assert len(rows) == 9
    for (route, pct), row in rows.items():
        configs = speed[(route, pct)]
        up = max(report.UPSTREAM, key=lambda k: configs.get(k, 0))
        fork = max(report.FORK, key=lambda k: configs.get(k, 0))
        assert (row["best_upstream"], row["best_fork"]) == (up, fork)
        assert row["ratio"] == round(round(configs[fork], 1) / round(configs[up], 1), 2)
        assert row["of_all_gpu"] == round(round(configs[fork], 1) / round(speed[(route, 0)]["all-gpu"], 1), 2)
    assert (rows[("learned", 75)]["best_fork"], rows[("learned", 75)]["ratio"]) == ("adapt-gpu-profile", 1.36)
    # the best fork configuration is picked after the runs: the table says of how many
    for row in rows.values():
        assert row["fork_configs"] == sum(1 for k in report.FORK if speed[(row["route"], row["budget_pct"])].get(k))
    text = rendered(report, summary)
    learned_75 = rows[("learned", 75)]
    assert f"| adapt-gpu-profile (best of {learned_75['fork_configs']}) | {learned_75['fork']} |" in text
    assert learned_75["fork_configs"] > 1 and "the best of their medians is picked after the runs" in text


def test_each_comparison_is_held_against_issue_10s_bar():
    report = load_script("report-placements")
    # 1.5x the better upstream placement, unless 0.9x all on the GPU is lower; under uniform routing 1.0x upstream
    assert report.issue_bar("learned", 100.0, 270.0) == 150.0
    assert report.issue_bar("learned", 200.0, 270.0) == 243.0
    assert report.issue_bar("zipf", 100.0, None) == 150.0
    assert report.issue_bar("uniform", 60.4, 272.8) == 60.4
    assert report.issue_bar("learned", 100.0, 270.0, "prompt processing") == 100.0
    runs, hot_gpu = committed_runs()
    hot_gpu["tokens_per_s"] = 1000.0  # learned 25 % over its bar; the committed round meets none
    summary = report.summarise(runs)
    all_gpu = {c["route"]: c["median"] for c in summary["cells"] if c["config"] == "all-gpu"}
    rows = {(c["route"], c["budget_pct"]): c for c in summary["comparisons"]}
    for (route, _), row in rows.items():
        assert row["of_bar"] == round(row["fork"] / report.issue_bar(route, row["upstream"], all_gpu[route]), 3)
    met = [c for c in rows.values() if c["of_bar"] >= 1]
    assert [(c["route"], c["budget_pct"]) for c in met] == [("learned", 25)]
    text = rendered(report, summary)
    assert text.count("(met) |") == len(met) and text.count("(not met) |") == len(rows) - len(met)


def test_a_configuration_without_a_result_is_named_instead_of_compared():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    for r in runs:
        if (r["route"], r["budget_pct"], r["config"]) == ("zipf", 50, "lru-pinned"):
            r["rc"], r["tokens_per_s"] = 1, None
    rows = {(c["route"], c["budget_pct"]): c for c in report.summarise(runs)["comparisons"]}
    assert rows[("zipf", 50)] == {"route": "zipf", "budget_pct": 50, "missing": ["lru-pinned"]}
    assert "ratio" in rows[("zipf", 25)]


def test_the_cpu_overlap_is_compared_with_the_cpu_after_the_gpu_where_both_ran():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    hot = {(r["route"], r["budget_pct"]): r for r in runs if r["config"] == "hot-gpu" and r["budget_pct"] == 25}
    for cell, speedup, ppl_delta in ((("learned", 25), 1.2, 0.0), (("zipf", 25), 1.0, 1.0)):  # zipf: another result
        r = hot[cell]
        runs += [{**r, "config": "hot-cpu", "tokens_per_s": 100.0},
                 {**r, "config": "hot-cpu-overlap", "tokens_per_s": 100.0 * speedup, "ppl": r["ppl"] + ppl_delta}]
    summary = report.summarise(runs)
    rows = {(o["route"], o["budget_pct"]): o for o in summary["pairs"]}
    assert all((o["config"], o["against"]) == ("hot-cpu-overlap", "hot-cpu") for o in rows.values())
    assert set(rows) == {("learned", 25), ("zipf", 25)}
    assert rows[("learned", 25)]["ratio"] == 1.2 and rows[("learned", 25)]["same_ppl"]
    assert rows[("zipf", 25)]["ratio"] == 1.0 and not rows[("zipf", 25)]["same_ppl"]
    # run at 25 % only, the CPU placements leave the other budgets' comparisons with upstream as they were
    assert all("missing" not in c for c in summary["comparisons"])
    text = rendered(report, summary)
    assert "| learned | 25% | 120.0 | 100.0 | 1.2 | yes |" in text and "| zipf | 25% | 100.0 | 100.0 | 1.0 | NO |" in text


def test_the_share_of_the_cpus_time_that_the_overlap_hides_comes_from_the_counted_runs():
    # bench-placements.py --stats: the fork's line of patch 0019, as llama_perf_context_print writes it
    parsed = load_script("bench-placements").parse_run(
        "llama_perf_context_print:        eval time =    8000.00 ms /  1000 runs   (    8.00 ms per token,   125.00 tokens per second)\n"
        "llama_perf_context_print:  moe CPU compute =    2000.00 ms /  1000 tokens (   2.000 ms per token), 4096.00 MiB of cold experts (2.15 GB/s)\n")
    assert (parsed["tokens_per_s"], parsed["cpu_ms_per_token"], parsed["cpu_mib"], parsed["cpu_gbs"]) == (125.0, 2.0, 4096.0, 2.15)
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs += [{**r, "config": "hot-cpu", "tokens_per_s": 100.0, "cpu_ms_per_token": 2.1, "cpu_gbs": 2.0},
             {**r, "config": "hot-cpu-overlap", "tokens_per_s": 125.0, "cpu_ms_per_token": 2.0, "cpu_gbs": 2.15}]
    summary = report.summarise(runs)
    (pair,) = summary["pairs"]
    assert pair["cpu_hidden"] == 1.0  # 10 ms a token less 8 ms, over the CPU's 2 ms a token
    cell = next(c for c in summary["cells"] if (c["route"], c["budget_pct"], c["config"]) == ("learned", 25, "hot-cpu-overlap"))
    assert (cell["cpu_ms_per_token"], cell["cpu_gbs"]) == (2.0, 2.15)
    text = rendered(report, summary)
    assert "| learned | 25% | 125.0 | 100.0 | 1.25 | yes | 1.0 |" in text
    assert "125.0 (125.0-125.0), CPU 2.000 ms/token at 2.15 GB/s" in text


def test_the_share_hidden_is_only_computed_for_the_overlap_and_idle_cpus_are_not_shown():
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs = [x for x in runs if x["config"] != "hot-gpu"] + [
        {**r, "config": "hot-gpu", "tokens_per_s": 125.0, "cpu_ms_per_token": 0.007, "cpu_gbs": 0.0},
        {**r, "config": "hot-hybrid", "tokens_per_s": 100.0, "cpu_ms_per_token": 2.0, "cpu_gbs": 20.0}]
    summary = report.summarise(runs)
    (pair,) = summary["pairs"]
    assert (pair["config"], pair["against"]) == ("hot-hybrid", "hot-gpu") and "cpu_hidden" not in pair
    text = rendered(report, summary)
    assert "| learned | 25% | 100.0 | 125.0 | 0.8 | yes |\n" in text
    assert "100.0 (100.0-100.0), CPU 2.000 ms/token at 20.0 GB/s" in text and "CPU 0.007" not in text


def test_skipping_cold_experts_is_compared_apart_from_the_lossless_placements():
    report = load_script("report-placements")
    bench = load_script("bench-placements")
    runs, r = committed_runs()
    top_line = ("llama_moe_hot: --moe-cold-top 6: 1536 of 6144 selections (25.00%) were of cold experts that were not computed; "
                "812 cold experts computed (2051.50 MiB)")
    runs.append({**r, "config": "hot-gpu-top6", "tokens_per_s": 10 * r["tokens_per_s"], "ppl": r["ppl"] + 1, **bench.parse_run(top_line)})
    summary = report.summarise(runs)
    lossless = next(c for c in summary["comparisons"] if (c["route"], c["budget_pct"]) == ("learned", 25))
    lossy = next(c for c in summary["lossy"] if (c["route"], c["budget_pct"]) == ("learned", 25))
    assert lossless["best_fork"] != "hot-gpu-top6"
    assert lossy["best_fork"] == "hot-gpu-top6" and lossy["ratio"] == round(lossy["fork"] / lossless["upstream"], 2)
    assert [len(rows) for rows in (summary["lossy"], summary["comparisons"])] == [1, 9]
    pair = next(p for p in summary["pairs"] if p["config"] == "hot-gpu-top6")
    assert pair["against"] == "hot-gpu" and abs(pair["ratio"] - 10) < 0.01 and not pair["same_ppl"]
    text = rendered(report, summary)
    assert "## Lossy: the fork skipping cold experts (--moe-cold-top) against upstream's best placement" in text
    assert ", 25.0% of selections skipped |" in text


@pytest.mark.parametrize("config", ["hot-gpu-prefetch-oracle", "hot-gpu-prefetch-router"])
def test_a_prefetch_is_compared_apart_from_the_fork_s_placements(config):
    # a replayed ranking is not a user's run, and the bench model's router predicts none of the replayed routing: neither
    # may stand as the fork's best placement; each is paired with the static set it takes its slots from
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs.append({**r, "config": config, "tokens_per_s": 10 * r["tokens_per_s"]})
    summary = report.summarise(runs)
    lossless = next(c for c in summary["comparisons"] if (c["route"], c["budget_pct"]) == ("learned", 25))
    assert lossless["best_fork"] != config
    assert [(c["route"], c["budget_pct"], c["best_fork"]) for c in summary["prefetch"]] == [("learned", 25, config)]
    pair = next(p for p in summary["pairs"] if p["config"] == config)
    assert pair["against"] == "hot-gpu" and pair["same_ppl"]
    assert "## Prefetch (--moe-prefetch) against upstream's best placement, apart from the fork's placements" in rendered(report, summary)


def test_the_prefetch_s_two_starts_are_paired():
    # 0027 starts the copies after the layer before's experts; the bench runs the earlier start beside it to compare
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs += [{**r, "config": "hot-gpu-prefetch2-oracle", "tokens_per_s": 3 * r["tokens_per_s"]},
             {**r, "config": "hot-gpu-prefetch2-oracle-early", "tokens_per_s": 2 * r["tokens_per_s"]}]
    summary = report.summarise(runs)
    pair = next(p for p in summary["pairs"] if p["against"] == "hot-gpu-prefetch2-oracle-early")
    assert pair["config"] == "hot-gpu-prefetch2-oracle" and pair["ratio"] == 1.5 and pair["same_ppl"]
    assert [c["best_fork"] for c in summary["prefetch"]] == ["hot-gpu-prefetch2-oracle"]
    assert "summed (0027), against beside them (the same PPL)" in rendered(report, summary)


def test_the_worker_s_rate_is_read_from_its_line_and_shown_beside_its_pair():
    bench = load_script("bench-placements")
    for config, threads, share in (("hot-gpu-worker-0", "8", "0"), ("hot-gpu-worker-40", "8", "0.4"), ("hot-gpu-worker-60", "8", "0.6"), ("hot-gpu-worker-70", "8", "0.7"),
                                   ("hot-gpu-worker-t12", "12", "0.5"), ("hot-gpu-worker-all", "8", "0.5")):
        args = bench.placement_args(config, 1944, 18, Path("p.bin"), Path("r.bin"))[1]
        assert args.count("--moe-cold-worker") == 1 and args[args.index("--moe-cold-worker") + 1] == threads
        assert args[-2:] == ["--moe-cold-cpu-share", share]
    # -all differs from hot-gpu-worker in its environment only: the worker in every split layer
    assert bench.CONFIG_ENV["hot-gpu-worker-all"] == {"LLAMA_MOE_WORKER_MIN_COLD": "0"} and "hot-gpu-worker" not in bench.CONFIG_ENV
    # -4k: the host experts in cudaMallocHost's 4 KiB pages, as before 0031, for the worker's rate in both
    for config, base in (("hot-gpu-worker-4k", "hot-gpu-worker"), ("adapt-gpu-worker-4k", "adapt-gpu-worker"), ("hot-gpu-4k", "hot-gpu")):
        assert bench.placement_args(config, 1944, 18, Path("p.bin"), Path("r.bin")) == (
            *bench.placement_args(base, 1944, 18, Path("p.bin"), Path("r.bin"))[:2], {"GGML_CUDA_NO_HUGE_PAGES": "1"})
    # -noise1: adapt-gpu-worker with one option more, paired with it in the report
    noise1 = bench.placement_args("adapt-gpu-worker-noise1", 1944, 18, Path("p.bin"), Path("r.bin"))
    assert noise1[1] == bench.placement_args("adapt-gpu-worker", 1944, 18, Path("p.bin"), Path("r.bin"))[1] + ["--moe-hot-adapt-noise", "1"]
    assert ("adapt-gpu-worker-noise1", "adapt-gpu-worker") in load_script("report-placements").PAIRS
    # -ratio2: the same with another ratio and noise in the swap rule
    ratio2 = bench.placement_args("adapt-gpu-worker-ratio2", 1944, 18, Path("p.bin"), Path("r.bin"))[1]
    default = bench.placement_args("adapt-gpu-worker", 1944, 18, Path("p.bin"), Path("r.bin"))[1]
    assert ratio2 == [("2" if default[i - 1] == "--moe-hot-adapt-ratio" else arg) for i, arg in enumerate(default)] + [
        "--moe-hot-adapt-noise", "1.5"]
    assert ("adapt-gpu-worker-ratio2", "adapt-gpu-worker") in load_script("report-placements").PAIRS
    assert "adapt-gpu-worker-ratio2" in load_script("report-placements").ADAPTIVE
    # -noise2: the default ratio, a lead of 2 standard deviations, in the adaptive rows
    noise2 = bench.placement_args("adapt-gpu-worker-noise2", 1944, 18, Path("p.bin"), Path("r.bin"))[1]
    assert noise2 == default + ["--moe-hot-adapt-noise", "2"]
    assert "adapt-gpu-worker-noise2" in load_script("report-placements").ADAPTIVE
    # -decay70: the default rule, its counts times 0.7 after each update (0056), paired with the default, in the adaptive rows
    decay70 = bench.placement_args("adapt-gpu-worker-decay70", 1944, 18, Path("p.bin"), Path("r.bin"))[1]
    assert decay70 == default + ["--moe-hot-adapt-decay", "0.7"]
    assert ("adapt-gpu-worker-decay70", "adapt-gpu-worker") in load_script("report-placements").PAIRS
    assert "adapt-gpu-worker-decay70" in load_script("report-placements").ADAPTIVE
    # -l1, -l2: 0030's and 0034's prefetch by their environment alone, paired with each other and with the CPU's default
    for config, where in (("hot-gpu-worker-l1", "l1"), ("hot-gpu-worker-l2", "l2")):
        assert bench.placement_args(config, 1944, 18, Path("p.bin"), Path("r.bin")) == (
            *bench.placement_args("hot-gpu-worker", 1944, 18, Path("p.bin"), Path("r.bin"))[:2], {"LLAMA_MOE_WORKER_PREFETCH": where})
    assert {("hot-gpu-worker-l2", "hot-gpu-worker-l1"), ("hot-gpu-worker", "hot-gpu-worker-l1")} <= set(load_script("report-placements").PAIRS)
    # a mechanism off by its environment alone, paired with the same configuration with it: -whole 0035's parts (static and
    # adaptive), -inline 0037's own copy stream; and one on by its environment alone, -follow 0041's worker following the
    # adaptive set, paired with the configuration without it
    whole, inline, follow = {"LLAMA_MOE_WORKER_WHOLE": "1"}, {"LLAMA_MOE_HOT_SWAP_INLINE": "1"}, {"LLAMA_MOE_WORKER_FOLLOW": "1"}
    for config, base, env in (("hot-gpu-worker-whole", "hot-gpu-worker", whole), ("adapt-gpu-worker-whole", "adapt-gpu-worker", whole),
                              ("adapt-gpu-worker-inline", "adapt-gpu-worker", inline),
                              ("adapt-gpu-worker-noise1-inline", "adapt-gpu-worker-noise1", inline),
                              ("adapt-gpu-worker-follow", "adapt-gpu-worker", follow),
                              ("adapt-gpu-worker-noise1-follow", "adapt-gpu-worker-noise1", follow)):
        assert bench.placement_args(config, 1944, 18, Path("p.bin"), Path("r.bin")) == (
            *bench.placement_args(base, 1944, 18, Path("p.bin"), Path("r.bin"))[:2], env)
        assert ((config, base) if env is follow else (base, config)) in load_script("report-placements").PAIRS
    followed = bench.parse_run("llama_moe_hot: adapt: the worker took part in 3 of its 15 layers at the end, after 14 changes (a layer "
                               "goes without it below 0.5 cold selections a token; LLAMA_MOE_WORKER_FOLLOW=1)")
    assert (followed["worker_layers_at_end"], followed["worker_layer_changes"]) == (3, 14)
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs += [{**r, "config": "adapt-gpu-worker-follow", "tokens_per_s": 120.0, **followed},  # no rate line: as where no job was sent
             {**r, "config": "adapt-gpu-worker", "tokens_per_s": 100.0}]
    pair = next(p for p in report.summarise(runs)["pairs"] if p["config"] == "adapt-gpu-worker-follow")
    assert (pair["against"], pair["ratio"], pair["worker"]) == ("adapt-gpu-worker", 1.2, "in 3 layers at the end after 14 moves")
    # -defer: 0038's lossy deferral by its environment alone, reported apart from the lossless placements
    report = load_script("report-placements")
    for config, base in (("hot-gpu-worker-defer", "hot-gpu-worker"), ("hot-gpu-worker-defer-100", "hot-gpu-worker-100"),
                         ("adapt-gpu-worker-defer", "adapt-gpu-worker")):
        assert bench.placement_args(config, 1944, 18, Path("p.bin"), Path("r.bin")) == (
            *bench.placement_args(base, 1944, 18, Path("p.bin"), Path("r.bin"))[:2], {"LLAMA_MOE_WORKER_DEFER": "1"})
        assert (config, base) in report.PAIRS and config in report.LOSSY and config not in report.FORK
    # -in: hot-gpu-worker's placement from the replayed text itself
    in_sample = bench.placement_args("hot-gpu-worker-in", 1944, 18, Path("p.bin"), Path("r.bin"))[1]
    assert in_sample == [("r.bin" if arg == "p.bin" else arg) for arg in bench.placement_args("hot-gpu-worker", 1944, 18, Path("p.bin"), Path("r.bin"))[1]]
    # -in-all: that in-sample placement with the worker in every split layer, an in-sample bound as -in is
    assert bench.placement_args("hot-gpu-worker-in-all", 1944, 18, Path("p.bin"), Path("r.bin")) == (
        *bench.placement_args("hot-gpu-worker-in", 1944, 18, Path("p.bin"), Path("r.bin"))[:2], {"LLAMA_MOE_WORKER_MIN_COLD": "0"})
    assert "hot-gpu-worker-in-all" in report.STATIC_IN and "hot-gpu-worker-in-all" not in report.FORK
    # -in-inplace: the same in-sample placement, its cold rows read in place (no staging reserved), an in-sample bound too
    assert bench.placement_args("hot-gpu-worker-in-inplace", 1944, 18, Path("p.bin"), Path("r.bin")) == (
        *bench.placement_args("hot-gpu-worker-in", 1944, 18, Path("p.bin"), Path("r.bin"))[:2], {"GGML_CUDA_MOE_COLD_IN_PLACE": "1"})
    assert "hot-gpu-worker-in-inplace" in report.STATIC_IN and "hot-gpu-worker-in-inplace" not in report.FORK
    share40 = bench.placement_args("adapt-gpu-worker-40-noise1", 1944, 18, Path("p.bin"), Path("r.bin"))[1]
    share50 = bench.placement_args("adapt-gpu-worker-noise1", 1944, 18, Path("p.bin"), Path("r.bin"))[1]
    assert share40 == [("0.4" if arg == "0.5" else arg) for arg in share50] and "0.5" in share50
    line = "llama_moe_worker: 8 threads computed 24576 jobs, 30000 experts (79.500 GB) in 1.500 s: 53.0 GB/s"
    phases = ("llama_moe_worker: a job's phases (input / gate and up / their product / down), us: thread 0 worked 0.6 / 35.3 / 0.2 / 17.4, "
              "waited for the others 0.1 / 2.0 / 0.0 / 3.5")
    parsed = bench.parse_run(line + "\n" + phases)
    assert (parsed["worker_experts"], parsed["worker_jobs"], parsed["worker_gbs"], parsed["worker_us_per_job"]) == (30000, 24576, 53.0, 61.0)
    assert (parsed["worker_phase_us"], parsed["worker_wait_us"]) == ([0.6, 35.3, 0.2, 17.4], [0.1, 2.0, 0.0, 3.5])
    assert bench.parse_run(line)["worker_phase_us"] == []  # a log from before the phases were timed
    # 0033: how often and how long the GPU's recv waited for the worker's answer
    recv = "llama_moe_worker: the backend waited for the answer of 6144 of 24576 jobs (25.0%): 12.0 us a wait, 3.0 us a job"
    assert (parsed["worker_recv_waited_pct"], parsed["worker_recv_wait_us"]) == (None, None)
    waits = bench.parse_run(line + "\n" + recv)
    assert (waits["worker_recv_waited_pct"], waits["worker_recv_wait_us"]) == (25.0, 3.0)
    without = ("llama_moe_hot: --moe-cold-worker: 6 split layers do without the worker: they expect fewer than 0.5 cold "
               "selections a token (by the profile; LLAMA_MOE_WORKER_MIN_COLD)")
    assert bench.parse_run(without)["worker_layers_without"] == 6 and "worker_layers_without" not in parsed
    assert "worker_layers_at_end" not in parsed
    assert "worker_gbs" not in bench.parse_run(line.replace("llama_moe_worker", "llama_moe_hot"))
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs = [x for x in runs if x["config"] != "hot-gpu"] + [{**r, "tokens_per_s": 100.0},
        {**r, "config": "hot-gpu-worker", "tokens_per_s": 200.0, "ppl": r["ppl"] + 0.01, **parsed}]
    summary = report.summarise(runs)
    pair = next(p for p in summary["pairs"] if p["config"] == "hot-gpu-worker")
    assert (pair["against"], pair["ratio"], pair["same_ppl"], pair["worker"]) == ("hot-gpu", 2.0, False, "53.0 GB/s, 61.0 µs a job")
    lossless = next(c for c in summary["comparisons"] if (c["route"], c["budget_pct"]) == ("learned", 25))
    assert lossless["best_fork"] == "hot-gpu-worker"  # a placement a user runs, unlike the prefetch's replayed rankings
    assert "| learned | 25% | 200.0 | 100.0 | 2.0 | NO | 53.0 GB/s, 61.0 µs a job |" in rendered(report, summary)
    runs[-1] = {**runs[-1], **waits}
    # issue 10's share of the CPU's expert time hidden behind the GPU's work: 1 - 3.0 µs waited a job / 61.0 µs a job
    assert ("| learned | 25% | 200.0 | 100.0 | 2.0 | NO | 53.0 GB/s, 61.0 µs a job, the GPU waited for it in 25.0% of the jobs "
            "(3.0 µs a job: 95.1% of the worker's time hidden behind the GPU's) |" in rendered(report, report.summarise(runs)))
    # 0035: the share of the worker's experts computed in part (tried: the line not parsed, the share left out of the row)
    part = "llama_moe_worker: 9000 of the 30000 experts in part, the device computing the rest (ggml_moe_host_send_set_parts)"
    assert parsed["worker_in_part"] is None
    runs[-1] = {**runs[-1], **bench.parse_run(line + "\n" + recv + "\n" + part)}
    assert runs[-1]["worker_in_part"] == 9000
    assert ("| learned | 25% | 200.0 | 100.0 | 2.0 | NO | 53.0 GB/s, 61.0 µs a job, the GPU waited for it in 25.0% of the jobs "
            "(3.0 µs a job: 95.1% of the worker's time hidden behind the GPU's), 30.0% of its experts in part |"
            in rendered(report, report.summarise(runs)))



def test_the_worker_s_shares_at_the_end_are_shown_beside_its_pair_with_the_fixed_share():
    # 0048: --moe-cold-cpu-share auto's line at exit, parsed into the run and shown in the pair's worker column (tried: the
    # line's mean read as its least share: the row said 0.18 on average)
    bench, report = load_script("bench-placements"), load_script("report-placements")
    line = ("llama_moe_hot: --moe-cold-cpu-share auto: the worker's share of a layer's cold experts 0.18 to 0.65, 0.42 on average, "
            "after 37 moves of 0.05")
    moved = bench.parse_run(line)
    assert (moved["worker_share_low"], moved["worker_share_high"], moved["worker_share_mean"], moved["worker_share_moves"]) == (
        0.18, 0.65, 0.42, 37)
    assert "worker_share_mean" not in bench.parse_run(line.replace("auto", "0.5"))
    runs, r = committed_runs()
    runs += [{**r, "config": "hot-gpu-worker-auto", "tokens_per_s": 110.0, **moved}, {**r, "config": "hot-gpu-worker", "tokens_per_s": 100.0}]
    pair = next(p for p in report.summarise(runs)["pairs"] if (p["config"], p["against"]) == ("hot-gpu-worker-auto", "hot-gpu-worker"))
    assert (pair["ratio"], pair["worker"]) == (1.1, "its share 0.18 to 0.65 at the end, 0.42 on average")
    assert ("adapt-gpu-worker-auto", "adapt-gpu-worker") in report.PAIRS and "adapt-gpu-worker-auto" in report.ADAPTIVE


HOST_GAPS = Path(__file__).resolve().parent.parent / "reports" / "2026-12-06-host-gaps-h100" / "placements-rounds" / "runs.jsonl"


def test_a_pair_run_in_several_rounds_gives_its_ratio_within_each_round():
    # the rounds alternate the configurations, and a machine's speed drifts between rounds: a pair is compared round by round
    report = load_script("report-placements")
    runs = [json.loads(line) for line in HOST_GAPS.read_text().splitlines()]
    speed = {(r["round"], r["route"], r["budget_pct"], r["config"]): r["tokens_per_s"] for r in runs}
    rows = [p for p in report.summarise(runs)["pairs"] if (p["config"], p["against"]) == ("hot-gpu-worker-sleep", "hot-gpu-worker")]
    assert len(rows) == 4
    for p in rows:
        ratios = [speed[(k, p["route"], p["budget_pct"], p["config"])] / speed[(k, p["route"], p["budget_pct"], p["against"])] for k in (0, 1)]
        assert p["rounds"] == f"{min(ratios):.3f}–{max(ratios):.3f} over 2 rounds"
    assert "| ratio within each round |" in rendered(report, report.summarise(runs))
    # one round, or a pair whose other side ran in other rounds: no spread to give
    assert all("rounds" not in p for p in report.summarise([r for r in runs if r["round"] == 0])["pairs"])
    moved = [{**r, "round": r["round"] + 2} if r["config"] == "hot-gpu-worker" else r for r in runs]
    assert all("rounds" not in p for p in report.summarise(moved)["pairs"] if p["against"] == "hot-gpu-worker")


def test_huge_pages_are_paired_with_the_4k_pages_they_replace():
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs = [x for x in runs if not x["config"].startswith("hot-gpu")] + [
        {**r, "tokens_per_s": 100.0}, {**r, "config": "hot-gpu-4k", "tokens_per_s": 80.0},
        {**r, "config": "hot-gpu-worker", "tokens_per_s": 200.0}, {**r, "config": "hot-gpu-worker-4k", "tokens_per_s": 160.0, "ppl": r["ppl"] + 1}]
    pairs = {(p["config"], p["against"]): p for p in report.summarise(runs)["pairs"] if (p["route"], p["budget_pct"]) == ("learned", 25)}
    assert (pairs[("hot-gpu", "hot-gpu-4k")]["ratio"], pairs[("hot-gpu", "hot-gpu-4k")]["same_ppl"]) == (1.25, True)
    assert (pairs[("hot-gpu-worker", "hot-gpu-worker-4k")]["ratio"], pairs[("hot-gpu-worker", "hot-gpu-worker-4k")]["same_ppl"]) == (1.25, False)


def test_the_huge_pages_each_side_held_are_shown_beside_their_pair():
    # the fewest MiB a configuration's runs were seen to hold: a pair of two 4 KiB runs says so instead of a gain
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs = [x for x in runs if not x["config"].startswith("hot-gpu")] + [
        {**r, "tokens_per_s": 100.0, "anon_huge_mib": 1944.0}, {**r, "tokens_per_s": 101.0, "anon_huge_mib": 0.0, "round": 1},
        {**r, "config": "hot-gpu-4k", "tokens_per_s": 100.0, "anon_huge_mib": 0.0}]
    pair = next(p for p in report.summarise(runs)["pairs"] if (p["config"], p["against"], p["route"], p["budget_pct"]) == ("hot-gpu", "hot-gpu-4k", "learned", 25))
    assert pair["huge_pages"] == "0 / 0 MiB"
    runs[-2]["anon_huge_mib"] = 1900.0
    md = rendered(report, report.summarise(runs))
    assert "| in huge pages (the first / the second, fewest seen) |" in md
    assert "| learned | 25% | 100.5 | 100.0 | 1.005 | yes | 1900 / 0 MiB |" in md


def test_runs_of_the_fork_alone_are_summarised_without_a_comparison():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    fork_only = [r for r in runs if r["config"] in ("hot-gpu", "adapt-gpu")]
    summary = report.summarise(fork_only)
    assert summary["cells"] and summary["comparisons"] == [] and summary["lossy"] == []


def test_what_counting_costs_is_a_pair_not_a_placement():
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs.append({**r, "config": "hot-gpu-counted", "tokens_per_s": 1000.0})  # faster than every placement, yet not the fork's best
    summary = report.summarise(runs)
    pair = next(p for p in summary["pairs"] if p["config"] == "hot-gpu-counted")
    assert (pair["against"], pair["route"], pair["budget_pct"], pair["same_ppl"]) == ("hot-gpu", r["route"], r["budget_pct"], True)
    assert pair["ratio"] == round(1000.0 / pair["against_tokens_per_s"], 3)
    assert all(c.get("best_fork") != "hot-gpu-counted" for c in summary["comparisons"])
    assert "Counting the selections (0007's read-back after every ubatch" in rendered(report, summary)


def test_the_wait_cuda_graphs_and_the_graphs_reused_diagnose_what_counting_costs():
    bench = load_script("bench-placements")
    perf = ("llama_perf_context_print:        eval time =    8000.00 ms /  1000 runs   (    8.00 ms per token,   125.00 tokens per second)\n"
            "llama_perf_context_print:    graphs reused =        998\n")
    assert bench.parse_run(perf)["graphs_reused"] == 998
    assert "graphs_reused" not in bench.parse_run(perf.splitlines()[0])
    report = load_script("report-placements")
    runs, r = committed_runs()
    runs += [{**r, "config": "hot-gpu-counted", "tokens_per_s": 90.0, "graphs_reused": 0},
             {**r, "config": "hot-gpu-counted-wait", "tokens_per_s": 72.0},
             {**r, "config": "hot-gpu-counted-copy", "tokens_per_s": 75.0},
             {**r, "config": "hot-gpu-nographs", "tokens_per_s": 80.0, "graphs_reused": 998},
             {**r, "config": "hot-gpu-counted-nographs", "tokens_per_s": 90.0, "graphs_reused": 0}]
    summary = report.summarise(runs)
    ratios = {(p["config"], p["against"]): p["ratio"] for p in summary["pairs"]}
    assert ratios[("hot-gpu-counted-nographs", "hot-gpu-counted")] == 1.0
    assert ratios[("hot-gpu-counted", "hot-gpu-counted-wait")] == 1.25
    assert ratios[("hot-gpu-counted", "hot-gpu-counted-copy")] == 1.2
    assert ratios[("hot-gpu-nographs", "hot-gpu")] == round(80.0 / r["tokens_per_s"], 3)
    diagnoses = ("hot-gpu-counted-wait", "hot-gpu-counted-copy", "hot-gpu-nographs", "hot-gpu-counted-nographs")
    assert all(c.get("best_fork") not in diagnoses for c in summary["comparisons"])
    text = rendered(report, summary)
    assert "90.0 (90.0-90.0), 0 graphs reused" in text and "80.0 (80.0-80.0), 998 graphs reused" in text
    assert "CUDA graphs off against on, the selections counted" in text


def test_each_round_rotates_the_configurations_of_a_cell_so_none_always_runs_first():
    bench = load_script("bench-placements")
    cells = [["a", "b", "c"], [], ["ref"]]
    assert bench.round_order(cells, 0) == ["a", "b", "c", "ref"]
    assert bench.round_order(cells, 1) == ["b", "c", "a", "ref"]
    assert bench.round_order(cells, 2) == ["c", "a", "b", "ref"]
    assert bench.round_order(cells, 3) == bench.round_order(cells, 0)


def miss_cells(per_miss_ms: float, base_ms: float) -> tuple[list[dict], dict]:
    """Made-up cells on an exact line (ms = base + per_miss x missed selections, 192 a token) and the meta with the
    static sets' hit rates that puts them there; an adaptive cell 0.3 ms above the line at its hit rate."""
    hits = {"hot-gpu": {"25": 0.7, "50": 0.92}, "hot-gpu-in": {"25": 0.82, "50": 0.97}}
    cells = [{"route": "learned", "budget_pct": int(pct), "config": config, "median": 1000 / (base_ms + per_miss_ms * 192 * (1 - hit))}
             for config, by_pct in hits.items() for pct, hit in by_pct.items()]
    cells.append({"route": "learned", "budget_pct": 25, "config": "adapt-gpu-noise", "hit_rate": 78.0,
                  "median": 1000 / (base_ms + per_miss_ms * 192 * 0.22 + 0.3)})
    return cells, {"static_hit": {"learned": hits}, "selections_per_token": {"learned": 192}}


def test_the_static_cells_give_the_cost_of_a_miss_and_adaptive_s_beyond_it():
    report = load_script("report-placements")
    cells, meta = miss_cells(0.061, 2.0)
    [line] = report.miss_lines(cells, meta)
    assert (line["route"], line["points"], line["base_ms"], line["per_miss_us"]) == ("learned", 4, 2.0, 61.0)
    [a] = line["adaptive"]
    assert (a["config"], a["budget_pct"], a["beyond_ms"]) == ("adapt-gpu-noise", 25, 0.3)
    text = "\n".join(report.miss_tables([line]))
    assert "| learned | 4 | 2.0 | 61.0 |" in text and "| learned | 25% | adapt-gpu-noise | 78.0% |" in text
    # two cells, or cells of one hit rate, draw no line; without the hit rates in meta, no section
    assert report.miss_lines(cells[:2] + cells[4:], meta) == []
    assert report.miss_lines(cells, {}) == [] and report.miss_tables([]) == []


def test_each_static_cell_gives_what_a_miss_costs_it_beyond_all_on_the_gpu():
    report = load_script("report-placements")
    cells, meta = miss_cells(0.061, 2.0)
    cells += [{"route": "learned", "budget_pct": 0, "config": "all-gpu", "median": 500.0},
              {"route": "learned", "budget_pct": 25, "config": "hot-gpu-worker", "median": 1000 / (2.0 + 0.045 * 192 * 0.3)},
              {"route": "zipf", "budget_pct": 25, "config": "hot-gpu", "median": 100.0}]  # no all-gpu under zipf: no cost
    costs = {(c["config"], c["budget_pct"]): c for c in report.miss_costs(cells, meta)}
    # the worker's cell takes hot-gpu's hit rate (the same profile); the adaptive cell, whose rate is over every token, none
    assert set(costs) == {("hot-gpu", 25), ("hot-gpu", 50), ("hot-gpu-in", 25), ("hot-gpu-in", 50), ("hot-gpu-worker", 25)}
    assert (costs[("hot-gpu", 25)]["misses_per_token"], costs[("hot-gpu", 25)]["us_per_miss"]) == (57.6, 61.0)
    assert costs[("hot-gpu-worker", 25)]["us_per_miss"] == 45.0
    assert "| learned | 25% | hot-gpu-worker | 57.6 | 4.592 | 45.0 |" in "\n".join(report.miss_cost_table(list(costs.values())))
    assert report.miss_costs(cells, {}) == [] and report.miss_cost_table([]) == []


def test_the_bench_records_the_static_sets_hit_rates_over_the_timed_tokens(tmp_path):
    bench = load_script("bench-placements")
    rng = np.random.default_rng(0)
    replay = moe_trace.Trace(2, 8, 2, rng.integers(0, 8, size=(40, 2, 2)).astype(np.int16))
    profile = moe_trace.Trace(2, 8, 2, rng.integers(0, 4, size=(30, 2, 2)).astype(np.int16))
    moe_trace.write_trace(replay, tmp_path / "r.bin")
    moe_trace.write_trace(profile, tmp_path / "p.bin")
    layout = hot_experts.ExpertLayout(8, {0: 1024 * 1024, 1: 1024 * 1024})  # 1 MiB an expert: a budget of N MiB keeps N in all
    # two chunks of 16 tokens: llama-perplexity times the second half of each, tokens 8-15 and 24-31
    meta = bench.static_hits(layout, {"learned": (tmp_path / "r.bin", tmp_path / "p.bin", None)}, [25, 50], lambda pct: 16 * pct // 100, 2, 16)
    decoded = np.concatenate([replay.ids[8:16], replay.ids[24:32]])
    for config, source in (("hot-gpu", profile), ("hot-gpu-in", replay)):
        for pct, budget in (("25", 4), ("50", 8)):
            n_hot = hot_experts.hot_counts(layout, budget, moe_trace.selection_counts(source))  # spread by the set's profile (0058)
            assert sum(n_hot.values()) == budget
            hot = [set(np.argsort(-np.bincount(source.ids[:, layer].ravel(), minlength=8), kind="stable")[:n_hot[layer]]) for layer in range(2)]
            direct = sum(int(e) in hot[layer] for layer in range(2) for e in decoded[:, layer].ravel()) / decoded.size
            assert meta["static_hit"]["learned"][config][pct] == round(direct, 4)
    assert meta["selections_per_token"] == {"learned": 4.0}


def stage(path: Path, runs: list[dict], meta: dict) -> Path:
    """A bench-placements output folder: its runs.jsonl and meta.json."""
    path.mkdir(parents=True)
    (path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def test_the_stages_of_a_session_are_merged_into_one_report(tmp_path):
    report = load_script("report-placements")
    runs, hot_gpu = committed_runs()
    settings = {"model": "m.gguf", "n_layer": 24, "threads": 8}
    learned = stage(tmp_path / "a", [hot_gpu], {**settings, "distinct_per_32": {"learned": 54.7},
                                                "static_hit": {"learned": {"hot-gpu": {"25": 0.8}}}})
    zipf = {**hot_gpu, "route": "zipf"}
    zipf_stage = stage(tmp_path / "b", [zipf], {**settings, "distinct_per_32": {"zipf": 82.0},
                                                "static_hit": {"learned": {"hot-gpu": {"50": 0.9}}, "zipf": {"hot-gpu": {"25": 0.6}}}})
    report.merge_stages([learned, zipf_stage], tmp_path / "out")
    merged = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert merged == {**settings, "distinct_per_32": {"learned": 54.7, "zipf": 82.0},
                      "static_hit": {"learned": {"hot-gpu": {"25": 0.8, "50": 0.9}}, "zipf": {"hot-gpu": {"25": 0.6}}}}
    assert [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()] == [hot_gpu, zipf]


def test_stages_of_other_settings_or_without_their_files_are_refused(tmp_path):
    report = load_script("report-placements")
    _, hot_gpu = committed_runs()
    eight = stage(tmp_path / "a", [hot_gpu], {"model": "m.gguf", "threads": 8, "distinct_per_32": {"learned": 54.7}})
    twelve = stage(tmp_path / "b", [hot_gpu], {"model": "m.gguf", "threads": 12, "distinct_per_32": {"learned": 54.7}})
    other_trace = stage(tmp_path / "c", [hot_gpu], {"model": "m.gguf", "threads": 8, "distinct_per_32": {"learned": 50.8}})
    with pytest.raises(ValueError, match=r"meta.json threads is 12, the stages before have 8"):
        report.merge_stages([eight, twelve], tmp_path / "out")
    with pytest.raises(ValueError, match=r"meta.json distinct_per_32 learned is 50.8, the stages before have 54.7"):
        report.merge_stages([eight, other_trace], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no runs.jsonl: pass the folders bench-placements.py wrote"):
        report.merge_stages([eight, tmp_path / "empty"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_traced_runs_get_a_table_of_their_gpu_time():
    # the H200 run of 2026-12-05 recorded with bench-placements --timeline: all on the GPU and the adaptive set at learned
    # 25 %, with and without the worker
    traced = Path(__file__).resolve().parent.parent / "reports" / "2026-12-05-worker-follows" / "timeline-24" / "runs.jsonl"
    runs = [json.loads(line) for line in traced.read_text().splitlines()]
    report = load_script("report-placements")
    md = rendered(report, {**report.summarise(runs), "runs": runs})
    section = md[md.index("## The GPU's time in the traced runs"):md.index("## Commands")]
    assert section.count("### learned ") == 3
    assert "### learned 25% adapt-gpu-worker, round 0: 218.57 t/s traced" in section
    # the split layer's kernels with their µs a launch: the gate/up mat-vec reading the cold experts, the worker's nodes
    # (their own µs a launch were not recorded then: a dash)
    assert "| mul_mat_vec_q<(ggml_type)12, 1, true, false, false, true> | 23.5 | 1131.9 | 48.07 | – | 0.1 |" in section
    assert "| moe_host_send | 23.5 | 267.3 | 11.35 | – | 3.1 |" in section
    # untraced runs add no section
    untraced = [{k: v for k, v in r.items() if k != "timeline"} for r in runs]
    assert "## The GPU's time" not in rendered(report, {**report.summarise(untraced), "runs": untraced})


FOLLOWS = Path(__file__).resolve().parent.parent / "reports" / "2026-12-05-worker-follows"


def test_a_run_is_set_beside_another_of_the_same_configurations(tmp_path):
    # the two H200 machines of 2026-12-05, the same learned traces: the second's cells against the first's
    report = load_script("report-placements")
    here = tmp_path / "second"
    here.mkdir()
    for name in ("runs.jsonl", "meta.json"):
        (here / name).write_text((FOLLOWS / "runs-24-second" / name).read_text())
    runs = [json.loads(line) for line in (here / "runs.jsonl").read_text().splitlines()]
    ab = report.read_against(FOLLOWS / "runs-24-first", "machine-1", report.summarise(runs)["cells"], runs,
                             json.loads((here / "meta.json").read_text()))
    assert [(r["config"], r["tokens_per_s"], r["against_tokens_per_s"], r["ratio"], r["same_ppl"]) for r in ab["rows"]] == [
        ("adapt-gpu-worker", 274.4, 237.1, 1.157, True), ("lru-pinned", 178.2, 170.6, 1.045, True)]
    md = rendered(report, {**report.summarise(runs), "against": ab})
    assert "## Against machine-1 (the same configurations; " in md
    assert ("| learned | 25% | adapt-gpu-worker | 274.4 | 237.1 | 1.157 | yes | 43.0 GB/s, 73.8 µs a job, the GPU waited for it in 17.5% "
            "of the jobs (1.9 µs a job: 97.4% of the worker's time hidden behind the GPU's), 43.0% of its experts in part, in 24 layers at "
            "the end after 0 moves | 31.8 GB/s, 99.7 µs a job, the GPU waited for it in 54.3% of the jobs (8.2 µs a job: 91.8% of the "
            "worker's time hidden behind the GPU's), 43.0% of its experts in part, in 24 layers at the end after 0 moves |") in md
    assert "### Traced" not in md  # neither side traced a cell
    # a cell whose every run failed on one side is named, not compared
    failed = [{**r, "rc": 1, "tokens_per_s": None} if r["config"] == "lru-pinned" else r for r in runs]
    first = [json.loads(line) for line in (FOLLOWS / "runs-24-first" / "runs.jsonl").read_text().splitlines()]
    ab = report.against(report.summarise(failed)["cells"], failed, report.summarise(first)["cells"], first)
    assert {"route": "learned", "budget_pct": 25, "config": "lru-pinned", "failed": "here"} in ab["rows"]
    assert "| learned | 25% | lru-pinned | not compared: every run failed here |" in "\n".join(report.against_tables({"dir": "d", "name": "n", **ab}))


def test_the_kernels_of_cells_traced_on_both_sides_are_set_beside_each_other():
    report = load_script("report-placements")
    runs = [json.loads(line) for line in (FOLLOWS / "timeline-24" / "runs.jsonl").read_text().splitlines()]
    other = json.loads(json.dumps(runs))
    matvec = "mul_mat_vec_q<(ggml_type)12, 1, true, false, false, true>"
    for r in other:
        if r.get("timeline") and r["config"] == "adapt-gpu-worker":
            r["timeline"]["kernels"][matvec]["us_per_launch"] = 30.0
            r["timeline"]["kernels"][matvec]["own_us_per_launch"] = 21.5
            r["timeline"]["kernels"].pop("moe_host_send")
    ab = report.against(report.summarise(runs)["cells"], runs, report.summarise(other)["cells"], other)
    assert sorted((t["config"], t["budget_pct"]) for t in ab["timelines"]) == [("adapt-gpu-noise", 25), ("adapt-gpu-worker", 25), ("all-gpu", 0)]
    md = "\n".join(report.against_tables({"dir": "d", "name": "fork-0042", **ab}))
    worker = md[md.index("### Traced: learned 25% adapt-gpu-worker"):]
    assert f"| {matvec} | 48.07 | 30.00 | – | 21.50 | 1131.9 | 1131.9 |" in worker
    assert "| moe_host_send | 11.35 | not run | – | | 267.3 | |" in worker


def test_a_run_to_set_beside_that_is_not_one_of_the_same_settings_is_refused(tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    for name in ("runs.jsonl", "meta.json"):
        (here / name).write_text((FOLLOWS / "runs-24-second" / name).read_text())
    meta = json.loads((FOLLOWS / "runs-24-first" / "meta.json").read_text())
    runs = (FOLLOWS / "runs-24-first" / "runs.jsonl").read_text()
    cases = {"empty": ({}, None, "no runs.jsonl: pass a folder bench-placements.py wrote"),
             "threads": ({**meta, "threads": 16}, runs, "meta.json threads is 16 there and 8 here: compare runs of the same model"),
             "trace": ({**meta, "distinct_per_32": {**meta["distinct_per_32"], "learned": 60.0}}, runs,
                       "meta.json distinct_per_32 learned is 60.0 there and"),
             "disjoint": (meta, "\n".join(json.dumps({**json.loads(line), "config": "hot-gpu"}) for line in runs.splitlines()),
                          "no routing, budget and configuration in both runs")}
    for name, (other_meta, other_runs, message) in cases.items():
        other = tmp_path / name
        other.mkdir()
        if other_runs is not None:
            (other / "meta.json").write_text(json.dumps(other_meta))
            (other / "runs.jsonl").write_text(other_runs)
        proc = subprocess.run([sys.executable, SCRIPTS / "report-placements.py", here, "--against", other], capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr, (name, proc.stderr)
    assert not (here / "report.json").exists()


def test_a_second_call_into_the_same_folder_adds_its_routings_to_meta_json(tmp_path):
    # device-run.sh's placements stages append to one runs.jsonl; meta.json was written anew by each, so the 2026-12-06 H100
    # report lost its learned and zipf routings' distinct experts and static hits to the uniform stage after them
    bench = load_script("bench-placements")
    settings = {"model": "m.gguf", "n_layer": 24, "threads": 8}
    bench.write_meta(tmp_path, {**settings, "distinct_per_32": {"learned": 56.05}, "static_hit": {"learned": {"hot-gpu": {"25": 0.68}}}})
    bench.write_meta(tmp_path, {**settings, "distinct_per_32": {"uniform": 111.78}, "static_hit": {"uniform": {"hot-gpu": {"25": 0.25}}}})
    assert json.loads((tmp_path / "meta.json").read_text()) == {
        **settings, "distinct_per_32": {"learned": 56.05, "uniform": 111.78},
        "static_hit": {"learned": {"hot-gpu": {"25": 0.68}}, "uniform": {"hot-gpu": {"25": 0.25}}}}
    before = (tmp_path / "meta.json").read_text()
    with pytest.raises(ValueError, match=r"meta.json n_layer is 48, the stages before have 24: merge only runs of the same model "
                                         r"and settings; or pass another --out"):
        bench.write_meta(tmp_path, {**settings, "n_layer": 48, "distinct_per_32": {"zipf": 82.06}})
    assert (tmp_path / "meta.json").read_text() == before


def test_runs_without_pdl_are_named_and_kept_apart_from_runs_with_it(tmp_path):
    # GGML_CUDA_PDL as ggml-cuda reads it (atoi): unset or non-zero launches with PDL, 0 or no leading digits without
    bench = load_script("bench-placements")
    assert [bench.cuda_pdl(env) for env in ({}, {"GGML_CUDA_PDL": "1"}, {"GGML_CUDA_PDL": " 2x"})] == [True, True, True]
    assert [bench.cuda_pdl({"GGML_CUDA_PDL": v}) for v in ("0", "-0", "off", "")] == [False, False, False, False]
    settings = {"model": "m.gguf", "n_layer": 24, "threads": 8}
    bench.write_meta(tmp_path, {**settings, "pdl": True})
    with pytest.raises(ValueError, match=r"meta.json pdl is False, the stages before have True"):
        bench.write_meta(tmp_path, {**settings, "pdl": False})
    report = load_script("report-placements")
    _, r = committed_runs()
    summary = report.summarise([r])
    off = "CUDA kernels launched without programmatic dependent launch (`GGML_CUDA_PDL=0`)."
    assert off not in rendered(report, summary) and off not in rendered(report, summary, pdl=True)
    assert off in rendered(report, summary, pdl=False)


def test_a_configuration_keeps_its_colour_in_every_panel_and_the_legend_names_every_line(tmp_path):
    # the 2026-12-06 H100 report's uniform panel had ncmoe, which the learned panel had not: the legend came from the first
    # panel and the colours from each panel's own order, so its LRU line was drawn in the in-sample set's colour
    import matplotlib.pyplot as plt

    report = load_script("report-placements")
    _, r = committed_runs()
    runs = [{**r, "config": "hot-gpu-worker-in", "tokens_per_s": 300.0}, {**r, "config": "lru-pinned", "tokens_per_s": 180.0},
            {**r, "route": "uniform", "config": "ncmoe", "tokens_per_s": 70.0},
            {**r, "route": "uniform", "config": "lru-pinned", "tokens_per_s": 90.0}]
    summary = report.summarise(runs)
    report.plot({**summary, "meta": {"distinct_per_32": {}, "ubatch": 1}}, tmp_path / "p.png")
    fig = plt.gcf()
    colours = defaultdict(set)
    for ax in fig.axes:
        for line in ax.get_lines():
            colours[line.get_label().replace("\n", " ")].add(tuple(line.get_color()))
    legend = [t.get_text().replace("\n", " ") for t in fig.axes[-1].get_legend().get_texts()]
    plt.close(fig)
    assert legend == [report.LABELS[c] for c in report.LABELS if c in ("ncmoe", "lru-pinned", "hot-gpu-worker-in")]
    assert set(colours) == set(legend) and all(len(c) == 1 for c in colours.values())
    assert len(set().union(*colours.values())) == 3
