"""llama-server's /metrics and /props for the MoE hot experts (patch 0014)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from llama_tools import load_script

from builder.patches import read_series
from builder.report.parse import parse_moe_adapt, parse_moe_cold_top, parse_moe_worker, parse_moe_worker_share

ROOT = Path(__file__).resolve().parent.parent
PATCH = "0014-server-report-the-MoE-hot-experts-in-metrics-and-pro.patch"
SAMPLE_LINE = re.compile(r"^(llamacpp:moe_\w+)(?:\{layer=\"(\d+)\"\})? (\S+)$")
PROMPTS = ["The ferry left the harbour at dawn, and the gulls followed it", "On deck a boy counted the buoys aloud"]
N_PREDICT = 16


def parse_metrics(text: str) -> dict[str, float]:
    """Our `llamacpp:moe_*` samples: name (with `{layer="i"}` for the per-layer ones) to value."""
    found = {}
    for line in text.splitlines():
        m = SAMPLE_LINE.match(line)
        if m:
            name = m.group(1) + (f"{{{m.group(2)}}}" if m.group(2) else "")
            found[name] = float(m.group(3))
    return found


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read().decode()


def complete(url: str, prompt: str) -> None:
    body = {"prompt": prompt, "n_predict": N_PREDICT, "temperature": 0, "ignore_eos": True, "cache_prompt": False,
            "return_tokens": True}
    request = urllib.request.Request(url + "/completion", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        assert len(json.load(r)["tokens"]) == N_PREDICT


def test_the_readme_sample_names_only_metrics_the_patch_writes():
    patch = next(p for p in read_series() if p.name == PATCH).text()
    readme = (ROOT / "README.md").read_text()
    sample = readme[readme.index("```text\nllamacpp:moe_"):]
    sample = sample[:sample.index("\n```\n")]
    names = {m.group(1) for m in map(SAMPLE_LINE.match, sample.splitlines()) if m}
    assert len(names) == 15
    for name in names:
        assert f'"{name.removeprefix("llamacpp:")}"' in patch, name
    # the documentation's table names each of them
    doc = (ROOT / "docs" / "hot-cold-split.md").read_text()
    for name in names:
        assert f"`{name.removeprefix('llamacpp:')}" in doc, name


def test_parse_metrics_keeps_the_layer_label():
    text = ("# TYPE llamacpp:moe_hot_hit_rate gauge\nllamacpp:moe_hot_hit_rate 0.25\n"
            'llamacpp:moe_hot_layer_hit_rate{layer="1"} 0.5\nllamacpp:prompt_tokens_total 3\n')
    assert parse_metrics(text) == {"llamacpp:moe_hot_hit_rate": 0.25, "llamacpp:moe_hot_layer_hit_rate{1}": 0.5}


@pytest.fixture(scope="module")
def servers(cpu_builds):
    return load_script("server-identity").slot_server, cpu_builds / "cpu" / "bin" / "llama-server"


def scrape(server) -> dict[str, float]:
    return parse_metrics(get(server.url + "/metrics"))


def props(server) -> dict:
    return json.loads(get(server.url + "/props"))["moe_hot"]


def check_counts(m: dict[str, float], n_layer_hot: int, expert_size: int) -> None:
    layers = [f"{{{i}}}" for i in range(n_layer_hot)]
    assert m["llamacpp:moe_hot_selections_total"] == sum(m[f"llamacpp:moe_hot_layer_selections_total{i}"] for i in layers)
    assert m["llamacpp:moe_hot_selections_hot_total"] == sum(m[f"llamacpp:moe_hot_layer_selections_hot_total{i}"] for i in layers)
    assert 0 <= m["llamacpp:moe_hot_selections_hot_total"] <= m["llamacpp:moe_hot_selections_total"]
    assert 0 <= m["llamacpp:moe_hot_hit_rate"] <= 1
    assert m["llamacpp:moe_hot_hit_rate"] == pytest.approx(m["llamacpp:moe_hot_selections_hot_total"] / m["llamacpp:moe_hot_selections_total"], rel=1e-5)
    for i in layers:
        assert 0 <= m[f"llamacpp:moe_hot_layer_hit_rate{i}"] <= 1
    # a cold expert selected by several tokens of a ubatch is computed once
    assert m["llamacpp:moe_cold_experts_total"] <= m["llamacpp:moe_hot_selections_total"] - m["llamacpp:moe_hot_selections_hot_total"]
    assert m["llamacpp:moe_cold_bytes_total"] == m["llamacpp:moe_cold_experts_total"] * expert_size
    assert m["llamacpp:moe_cold_bytes_per_token"] == pytest.approx(m["llamacpp:moe_cold_bytes_total"] / m["llamacpp:moe_hot_tokens_total"], rel=1e-5)


@pytest.mark.slow
def test_a_static_hot_set_reports_its_selections_and_its_configuration(servers, tiny_moe, tmp_path):
    slot_server, binary = servers
    with slot_server(binary, tiny_moe, 1, ["--cpu-moe", "--no-repack", "-t", "2", "--moe-hot-mib", "1", "--metrics"], tmp_path / "static.log") as server:
        p = props(server)
        assert p == {"budget": 1024 * 1024, "size": p["size"], "n_expert": 16, "n_layer_hot": 2, "n_hot": [4, 4],
                     "expert_size": p["expert_size"], "cold": "cpu", "adapt": 0, "adapt_ratio": 1.25, "adapt_margin": 1.0, "adapt_noise": 2.5,
                     "adapt_decay": 0.5, "cold_cpu_share": 0.0, "cold_top": 0, "cold_worker": 0, "counts": True}
        expert_size = p["expert_size"][0]
        assert p["expert_size"] == [expert_size, expert_size] and 4 * 2 * expert_size <= p["size"] <= 1024 * 1024
        # the warmup is not counted, llama-server's start-up probe of the memory (4 tokens) is
        before = scrape(server)
        assert before["llamacpp:moe_hot_bytes"] == p["size"] and before["llamacpp:moe_hot_budget_bytes"] == 1024 * 1024
        complete(server.url, PROMPTS[0])
        middle = scrape(server)
        start = time.monotonic()
        complete(server.url, PROMPTS[1])
        after = scrape(server)
        elapsed = time.monotonic() - start
    assert server.exit == "exit 0"
    for m in (middle, after):
        check_counts(m, 2, expert_size)
    # patch 0019: the CPU's time (without a GPU, all of each counted graph), within the wall time of the request
    assert 0 < after["llamacpp:moe_cpu_seconds_total"] - middle["llamacpp:moe_cpu_seconds_total"] <= elapsed
    for name in ("selections", "tokens"):
        assert before[f"llamacpp:moe_hot_{name}_total"] < middle[f"llamacpp:moe_hot_{name}_total"] < after[f"llamacpp:moe_hot_{name}_total"]
    assert before["llamacpp:moe_hot_selections_hot_total"] <= middle["llamacpp:moe_hot_selections_hot_total"] <= after["llamacpp:moe_hot_selections_hot_total"]
    assert before["llamacpp:moe_cold_bytes_total"] < middle["llamacpp:moe_cold_bytes_total"] < after["llamacpp:moe_cold_bytes_total"]
    assert "llamacpp:moe_cold_cpu_bytes_total" not in after  # --moe-cold hybrid's alone
    assert "llamacpp:moe_cold_skipped_total" not in after  # --moe-cold-top's alone
    # each decoded token selects 4 experts in each of the 2 layers (the prompt's last layer computes only its output row)
    n_decoded = N_PREDICT - 1
    assert middle["llamacpp:moe_hot_selections_total"] - before["llamacpp:moe_hot_selections_total"] >= n_decoded * 4 * 2
    assert (after["llamacpp:moe_hot_swaps_total"], after["llamacpp:moe_hot_updates_total"], after["llamacpp:moe_hot_swap_bytes_total"]) == (0, 0, 0)


@pytest.mark.slow
def test_decoded_tokens_counted_in_the_graph_count_as_copied_ones(servers, tiny_moe, tmp_path, monkeypatch):
    # every expert hot: the decoded tokens (one-token ubatches) are counted by the node that reads the down experts' copies
    # (patch 0022), the prompts and the start-up probe from copies of the selections; LLAMA_MOE_HOT_COUNT_COPY=1 copies all
    slot_server, binary = servers
    totals = {}
    for copy in ("0", "1"):
        monkeypatch.setenv("LLAMA_MOE_HOT_COUNT_COPY", copy)
        log = tmp_path / f"copy-{copy}.log"
        with slot_server(binary, tiny_moe, 1, ["--cpu-moe", "--no-repack", "-t", "2", "--moe-hot-mib", "4", "--metrics"], log) as server:
            for prompt in PROMPTS:
                complete(server.url, prompt)
            m = scrape(server)
            check_counts(m, 2, props(server)["expert_size"][0])
        assert server.exit == "exit 0"
        assert ("counts the selections of 2 of the 2 counted layers" in log.read_text()) == (copy == "0")
        totals[copy] = {k: v for k, v in m.items() if "selections" in k or "tokens_total" in k or "hit_rate" in k}
    assert totals["0"] == totals["1"]
    # each decoded token selects 4 experts in each of the 2 layers, all hot
    assert totals["0"]["llamacpp:moe_hot_selections_hot_total"] == totals["0"]["llamacpp:moe_hot_selections_total"] >= 2 * (N_PREDICT - 1) * 4 * 2


@pytest.mark.slow
def test_an_adaptive_hot_set_counts_its_swaps_as_its_log_does(servers, tiny_moe, tmp_path):
    slot_server, binary = servers
    log = tmp_path / "adapt.log"
    args = ["--cpu-moe", "--no-repack", "-t", "2", "--moe-hot-mib", "1", "--moe-hot-adapt", "4", "--moe-hot-adapt-margin", "0.5", "--moe-hot-adapt-noise", "0",
            "--moe-hot-adapt-decay", "0.25", "--metrics"]
    with slot_server(binary, tiny_moe, 1, args, log) as server:
        p = props(server)
        assert (p["adapt"], p["adapt_ratio"], p["adapt_margin"], p["adapt_noise"], p["adapt_decay"], p["counts"], p["n_hot"]) == (
            4, 1.25, 0.5, 0, 0.25, True, [4, 4])
        for prompt in PROMPTS:
            complete(server.url, prompt)
        m = scrape(server)
    assert server.exit == "exit 0"
    check_counts(m, 2, p["expert_size"][0])
    assert m["llamacpp:moe_hot_updates_total"] > 0 and m["llamacpp:moe_hot_swaps_total"] > 0
    assert m["llamacpp:moe_hot_swap_bytes_total"] == m["llamacpp:moe_hot_swaps_total"] * p["expert_size"][0]
    # the line the context logs when it is freed counts the same (nothing ran after the scrape)
    adapt = parse_moe_adapt(log.read_text())
    assert (adapt.updates, adapt.swaps) == (m["llamacpp:moe_hot_updates_total"], m["llamacpp:moe_hot_swaps_total"])
    assert adapt.mib_copied == pytest.approx(m["llamacpp:moe_hot_swap_bytes_total"] / 2**20, abs=0.006)
    assert adapt.hit_rate == pytest.approx(100 * m["llamacpp:moe_hot_hit_rate"], abs=0.06)


@pytest.mark.slow
def test_a_hybrid_split_reports_the_cold_bytes_the_cpu_computed(servers, tiny_moe, tmp_path):
    # patch 0018: without a GPU both cold parts run on the CPU, and the CPU's side is counted as on a GPU machine
    slot_server, binary = servers
    args = ["--cpu-moe", "--no-repack", "-t", "2", "--moe-hot-mib", "1", "--moe-cold", "hybrid", "--moe-cold-cpu-share", "0.25", "--metrics"]
    with slot_server(binary, tiny_moe, 1, args, tmp_path / "hybrid.log") as server:
        p = props(server)
        assert (p["cold"], p["cold_cpu_share"]) == ("hybrid", 0.25)
        for prompt in PROMPTS:
            complete(server.url, prompt)
        m = scrape(server)
    assert server.exit == "exit 0"
    expert_size = p["expert_size"][0]
    check_counts(m, 2, expert_size)
    cpu_bytes, cold_bytes = m["llamacpp:moe_cold_cpu_bytes_total"], m["llamacpp:moe_cold_bytes_total"]
    assert cpu_bytes % expert_size == 0 and 0 < cpu_bytes < cold_bytes
    assert m["llamacpp:moe_cold_cpu_byte_share"] == pytest.approx(cpu_bytes / cold_bytes, rel=1e-5)
    # with every cold expert on the CPU's side and every step below 32 tokens (short prompts), the CPU computed them all
    args[args.index("0.25")] = "1"
    with slot_server(binary, tiny_moe, 1, args, tmp_path / "hybrid-cpu.log") as server:
        complete(server.url, PROMPTS[0])
        m = scrape(server)
    assert server.exit == "exit 0"
    assert m["llamacpp:moe_cold_cpu_bytes_total"] == m["llamacpp:moe_cold_bytes_total"] > 0
    assert m["llamacpp:moe_cold_cpu_byte_share"] == 1


@pytest.mark.slow
def test_the_cpu_worker_reports_what_it_computed_as_its_log_does(servers, tiny_moe, tmp_path, monkeypatch):
    # patch 0029, without a GPU: the CPU reads the other cold experts in place (LLAMA_MOE_COLD_IN_PLACE_CPU, 0026); its
    # counters need no --metrics counting, they are the worker's own
    monkeypatch.setenv("LLAMA_MOE_COLD_IN_PLACE_CPU", "1")
    slot_server, binary = servers
    log = tmp_path / "worker.log"
    args = ["--cpu-moe", "--no-repack", "-t", "2", "--moe-hot-mib", "1", "--moe-cold", "gpu", "--moe-cold-worker", "1", "--moe-cold-cpu-share", "1"]
    with slot_server(binary, tiny_moe, 1, args + ["--metrics"], log) as server:
        p = props(server)
        assert (p["cold"], p["cold_worker"], p["cold_cpu_share"]) == ("gpu", 1, 1)
        for prompt in PROMPTS:
            complete(server.url, prompt)
        m = scrape(server)
    assert server.exit == "exit 0"
    jobs, experts = m["llamacpp:moe_cold_worker_jobs_total"], m["llamacpp:moe_cold_worker_experts_total"]
    assert 0 < jobs <= experts and m["llamacpp:moe_cold_worker_seconds_total"] > 0
    assert m["llamacpp:moe_cold_worker_bytes_total"] == experts * p["expert_size"][0]
    # the line the worker logs when the context is freed counts the same (nothing ran after the scrape)
    worker = parse_moe_worker(log.read_text())
    assert (worker.jobs, worker.experts) == (jobs, experts)
    # without the worker (the tools start one by default with --moe-cold gpu, 0032) none of its metrics
    with slot_server(binary, tiny_moe, 1, args[:-4] + ["--moe-cold-worker", "0", "--metrics"], tmp_path / "no-worker.log") as server:
        assert props(server)["cold_worker"] == 0
        assert not any("worker" in name for name in scrape(server))
    assert server.exit == "exit 0"


@pytest.mark.slow
def test_skipped_cold_experts_are_counted_apart_as_the_log_counts_them(servers, tiny_moe, tmp_path):
    # patch 0020: a cold expert at a token's ranks 3 and 4 (of 4) is not computed, and counts as skipped, not as a cold expert read
    slot_server, binary = servers
    log = tmp_path / "top.log"
    args = ["--cpu-moe", "--no-repack", "-t", "2", "--moe-hot-mib", "1", "--moe-cold-top", "2", "--metrics"]
    with slot_server(binary, tiny_moe, 1, args, log) as server:
        p = props(server)
        assert p["cold_top"] == 2
        for prompt in PROMPTS:
            complete(server.url, prompt)
        m = scrape(server)
    assert server.exit == "exit 0"
    check_counts(m, 2, p["expert_size"][0])
    selections, hot, skipped = (m[f"llamacpp:moe_{name}"] for name in ("hot_selections_total", "hot_selections_hot_total", "cold_skipped_total"))
    assert 0 < skipped <= selections / 2 and hot + skipped <= selections  # ranks 3 and 4 are half of the selections
    # the line the context logs when it is freed counts the same (nothing ran after the scrape)
    top = parse_moe_cold_top(log.read_text())
    assert (top.skipped, top.selections, top.cold) == (skipped, selections, m["llamacpp:moe_cold_experts_total"])


@pytest.mark.slow
def test_without_hot_experts_there_are_no_moe_metrics_and_without_metrics_no_counts(servers, tiny_moe, tmp_path):
    slot_server, binary = servers
    with slot_server(binary, tiny_moe, 1, ["--cpu-moe", "--no-repack", "-t", "2", "--metrics"], tmp_path / "off.log") as server:
        complete(server.url, PROMPTS[0])
        text = get(server.url + "/metrics")
        assert props(server) is None
    assert "llamacpp:prompt_tokens_total" in text and "llamacpp:moe_" not in text
    # without --metrics the selections are not read back: the decode path is 0003's
    with slot_server(binary, tiny_moe, 1, ["--cpu-moe", "--no-repack", "-t", "2", "--moe-hot-mib", "1"], tmp_path / "quiet.log") as server:
        assert props(server)["counts"] is False
        with pytest.raises(urllib.error.HTTPError) as info:
            get(server.url + "/metrics")
        assert info.value.code == 501
        assert "Start it with `--metrics`" in info.value.read().decode()


@pytest.mark.slow
def test_props_give_the_worker_s_mean_share_where_it_moves(servers, tiny_moe, tmp_path, monkeypatch):
    # patch 0048: with --moe-cold-cpu-share auto, cold_cpu_share is the layers' mean share now, as the log gives it at exit;
    # tiny_moe's experts are whole, so every share starts at the least that gives the worker a lone cold selection, 0.51
    # (tried: /props giving the share the worker started from, 0.5)
    monkeypatch.setenv("LLAMA_MOE_COLD_IN_PLACE_CPU", "1")
    slot_server, binary = servers
    log = tmp_path / "auto.log"
    args = ["--cpu-moe", "--no-repack", "-t", "2", "--moe-hot-mib", "1", "--moe-cold", "gpu", "--moe-cold-worker", "1",
            "--moe-cold-cpu-share", "auto"]
    with slot_server(binary, tiny_moe, 1, args, log) as server:
        assert props(server)["cold_cpu_share"] == pytest.approx(0.51)
        for prompt in PROMPTS:
            complete(server.url, prompt)
        share = props(server)["cold_cpu_share"]
    assert server.exit == "exit 0"
    assert round(share, 2) == parse_moe_worker_share(log.read_text()).mean
