"""The fork's C++ error paths in the real CPU build: bad routing traces read by llama_moe_trace_read (patch 0002)
through --moe-route and --moe-hot-profile, a hot budget below one expert and hot experts with the MoE cache or an RPC
device (0003).
Each must stop the tool with the reason, not crash it or go on with a wrong setup."""

from __future__ import annotations

import socket
import subprocess
import time

import numpy as np
import pytest
from llama_tools import final_ppl, perplexity

from builder import moe_trace
from builder.llama_server import free_port
from builder.moe_trace import HEADER, MAGIC, RECORD, VERSION
from builder.synth_model import ModelSpec, resolve_vocab, write_moe_model

pytestmark = pytest.mark.slow

N_LAYER, N_EXPERT, N_USED = 2, 16, 4  # the shape of the tiny_moe fixture
ONE_TOKEN = bytes(2 * N_LAYER * N_USED)  # expert 0 everywhere


def header(magic: bytes = MAGIC, version: int = VERSION) -> bytes:
    return HEADER.pack(magic, version, N_LAYER, N_EXPERT, N_USED)


BAD_TRACES = {
    "bad-magic": (header(magic=b"NOPE") + RECORD.pack(1) + ONE_TOKEN, "is not a MoE routing trace (bad magic)"),
    "version": (header(version=VERSION + 1) + RECORD.pack(1) + ONE_TOKEN, f"has version {VERSION + 1}, expected {VERSION}"),
    "short-header": (MAGIC + bytes(6), "is not a MoE routing trace (bad magic)"),
    "cut-record": (header() + RECORD.pack(5) + ONE_TOKEN, "is truncated (record of 5 tokens at offset 20)"),
    "cut-length": (header() + RECORD.pack(1) + ONE_TOKEN + b"\x01\x00", "is truncated (record at offset"),
    "expert-id": (header() + RECORD.pack(1) + (N_EXPERT).to_bytes(2, "little") + ONE_TOKEN[2:], f"has an invalid expert id {N_EXPERT} at offset 24"),
    "no-tokens": (header(), "has no tokens"),
}


def failed(proc) -> str:
    assert proc.returncode != 0, proc.stderr[-3000:]
    return proc.stderr


@pytest.mark.parametrize("option", ["--moe-route", "--moe-hot-profile"])
@pytest.mark.parametrize("name", sorted(BAD_TRACES))
def test_bad_trace_files_stop_the_tool_naming_the_fault(cpu_builds, tiny_moe, story, tmp_path, option, name):
    content, message = BAD_TRACES[name]
    trace = tmp_path / f"{name}.moetrace"
    trace.write_bytes(content)
    args = ["--moe-route", f"trace:{trace}"] if option == "--moe-route" else ["--cpu-moe", "--moe-hot-mib", "1", "--moe-hot-profile", str(trace)]
    err = failed(perplexity(cpu_builds, tiny_moe, story, *args))
    assert str(trace) in err and message in err


def test_a_missing_trace_file_is_named(cpu_builds, tiny_moe, story, tmp_path):
    err = failed(perplexity(cpu_builds, tiny_moe, story, "--moe-route", f"trace:{tmp_path / 'none.moetrace'}"))
    assert f"failed to open MoE routing trace '{tmp_path / 'none.moetrace'}'" in err


@pytest.mark.parametrize("with_profile", [False, True])
def test_a_budget_below_one_expert_per_layer_is_refused(cpu_builds, pinned_tree, story, tmp_path, with_profile):
    model = tmp_path / "twelve-layers.gguf"  # 1 MiB over 12 layers: 85 KiB each, an expert is ~110 KiB
    write_moe_model(model, ModelSpec(arch="qwen3moe", n_layer=12), resolve_vocab(None, "qwen3moe", pinned_tree))
    profile = []
    if with_profile:  # spread by a profile (0058), every layer still needs one expert first
        trace = tmp_path / "profile.moetrace"
        moe_trace.write_trace(moe_trace.Trace(12, 16, 4, np.tile(np.arange(4, dtype="<i2"), (8, 12, 1))), trace)
        profile = ["--moe-hot-profile", str(trace)]
    err = failed(perplexity(cpu_builds, model, story, "--cpu-moe", "--moe-hot-mib", "1", *profile))
    assert ("MoE hot experts: --moe-hot-mib 1 leaves layer 0 without a hot expert (one takes 0.11 MiB, 12 layers keep their "
            "experts in host memory); use at least 2 MiB") in err


def test_hot_experts_refuse_the_moe_cache(cpu_builds, tiny_moe, story):
    err = failed(perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-mib", "1", "--moe-cache-mib", "4"))
    assert "MoE hot experts (--moe-hot-mib) cannot be combined with the MoE cache (--moe-cache-mib)" in err


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def rpc_server(cpu_builds):
    """The cpu build's ggml-rpc-server on a free loopback port, serving its CPU; yields its address."""
    port = free_port()
    command = [cpu_builds / "cpu" / "bin" / "ggml-rpc-server", "-H", "127.0.0.1", "-p", str(port), "-t", "1"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as server:
        try:
            deadline = time.monotonic() + 30
            while not listening(port):
                assert server.poll() is None and time.monotonic() < deadline, f"ggml-rpc-server did not listen: {server.stderr.read()}"
                time.sleep(0.1)
            yield f"127.0.0.1:{port}"
        finally:
            server.kill()


def test_hot_experts_refuse_rpc_devices(cpu_builds, tiny_moe, story, rpc_server):
    """The layers run on the RPC device, whose server need not know the hot copies' ops: refused, while the same
    run without hot experts works through it."""
    rpc = ("--rpc", rpc_server, "-ngl", "99", "--cpu-moe")
    through_rpc = perplexity(cpu_builds, tiny_moe, story, *rpc)
    assert final_ppl(through_rpc) and f"RPC0[{rpc_server}] model buffer size" in through_rpc.stderr
    err = failed(perplexity(cpu_builds, tiny_moe, story, *rpc, "--moe-hot-mib", "1"))
    assert "MoE hot experts (--moe-hot-mib) do not support RPC devices (RPC0); run without --rpc, or without --moe-hot-mib" in err


def test_a_profile_without_a_budget_is_refused(cpu_builds, tiny_moe, story, tmp_path):
    profile = tmp_path / "p.moetrace"
    profile.write_bytes(header() + RECORD.pack(1) + ONE_TOKEN)
    err = failed(perplexity(cpu_builds, tiny_moe, story, "--cpu-moe", "--moe-hot-profile", str(profile)))
    assert "the MoE hot profile (--moe-hot-profile) requires a budget (--moe-hot-mib)" in err
