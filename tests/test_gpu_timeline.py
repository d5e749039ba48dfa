"""The GPU timeline: scripts/gpu-timeline.c compiles against the toolkit's CUPTI into a library the CUDA driver can inject,
and builder/report/gpu_timeline.py sums up the lines it writes. Recording needs a GPU (scripts/device-run.sh placements
with TIMELINE=1); here the library is built and its summary checked on a timeline of known sums."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.report.gpu_timeline import kernel_name, summarize

ROOT = Path(__file__).resolve().parent.parent
CUDA = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
MMVQ = "_Z13mul_mat_vec_qIL9ggml_type12ELi1EEvPKvS2_Pf"  # void mul_mat_vec_q<(ggml_type)12, 1>(void const*, void const*, float*)
RECV = "_Z10k_moe_recvPKfPf"  # k_moe_recv(float const*, float*)
# two steps: step 1 the mat-vec (100 ns), a 50 ns gap, recv (200 ns) beside a memset on another stream; step 2 after a
# 2 ms gap (host work, left out); a host-to-device copy of 1 MiB and one of the copy kind CUPTI calls 8, device to device
TIMELINE = f"""C 0 1000 7 1048576 1
K 1000 1100 7 {MMVQ}
K 1150 1350 7 {RECV}
S 1200 1400 9 64
K 2001400 2001500 7 {MMVQ}
C 2001500 2001600 7 2048 8
"""


@pytest.fixture
def timeline(tmp_path) -> Path:
    path = tmp_path / "timeline.txt"
    path.write_text(TIMELINE)
    return path


def test_the_injection_library_builds_against_cupti(tmp_path):
    include = next((d for d in (CUDA / "include", CUDA / "extras/CUPTI/include") if (d / "cupti.h").is_file()), None)
    lib = next((p for d in (CUDA / "lib64", CUDA / "extras/CUPTI/lib64") for p in sorted(d.glob("libcupti.so*"))), None)
    if include is None or lib is None:
        pytest.skip(f"no CUPTI under {CUDA} (set CUDA_HOME)")
    out = tmp_path / "libgpu-timeline.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{include}",
                    str(ROOT / "scripts/gpu-timeline.c"), str(lib), "-o", str(out)], check=True)
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(out)], capture_output=True, text=True, check=True).stdout
    assert " T InitializeInjection" in symbols  # what the driver calls with CUDA_INJECTION64_PATH


def test_summary_sums_work_idle_and_copies(timeline):
    s = summarize(timeline, tokens=2)
    # busy: copy 1000 + mmvq 100 + recv 200 + the memset's 50 beyond recv + mmvq 100 + copy 100 = 1550 ns over 2 steps
    assert s["busy_us_per_token"] == pytest.approx(1.55 / 2)
    # idle: the 50 ns before recv; the 2 ms gap is host work, counted apart
    assert s["idle_us_per_token"] == pytest.approx(0.05 / 2)
    assert s["long_gaps"] == {"count": 1, "us": pytest.approx(2000.0), "at_least_us": 1000.0}
    mmvq = s["kernels"]["mul_mat_vec_q<(ggml_type)12, 1>"]
    assert (mmvq["launches"], mmvq["us"], mmvq["us_per_launch"]) == (2, pytest.approx(0.2), pytest.approx(0.1))
    assert s["kernels"]["k_moe_recv"]["idle_before_us"] == pytest.approx(0.05)
    assert s["copies"]["host to device"] == {"copies": 1, "mib": 1.0, "us": pytest.approx(1.0)}
    assert s["copies"]["device to device"]["copies"] == 1
    assert s["copies"]["memset"]["copies"] == 1


def test_a_kernel_launched_early_owns_only_its_time_after_the_work_before_it(tmp_path):
    # under PDL the mat-vec starts 300 ns before recv ends and waits inside for it: 500 ns start to end, 200 its own;
    # the second mat-vec follows a memset on another stream that ends 50 ns into it; recv starts after a 100 ns gap
    path = tmp_path / "pdl.txt"
    path.write_text(f"K 0 100 7 {MMVQ}\nK 200 700 7 {RECV}\nK 400 900 7 {MMVQ}\nS 950 1050 9 64\nK 1000 1100 7 {MMVQ}\n")
    s = summarize(path, tokens=1)
    mmvq, recv = s["kernels"]["mul_mat_vec_q<(ggml_type)12, 1>"], s["kernels"]["k_moe_recv"]
    assert (mmvq["us"], mmvq["own_us"]) == (pytest.approx(0.7), pytest.approx(0.1 + 0.2 + 0.05))
    assert mmvq["own_us_per_launch"] == pytest.approx(0.35 / 3)
    assert (recv["us"], recv["own_us_per_token"]) == (pytest.approx(0.5), pytest.approx(0.5))
    # every kernel's own time and the copies' part of the busy time sum to it: 0.1 + 0.5 + 0.2 + 0.1 (memset) + 0.05
    assert s["busy_us_per_token"] == pytest.approx(mmvq["own_us"] + recv["own_us"] + 0.1)


def test_a_shorter_long_gap_leaves_the_small_gaps_out_too(timeline):
    s = summarize(timeline, tokens=2, long_gap_us=0.01)
    assert s["idle_us_per_token"] == 0
    assert s["long_gaps"]["count"] == 2


def test_kernel_names_keep_templates_and_drop_the_rest():
    assert kernel_name("void (anonymous namespace)::k<(ggml_type)12, 1>(float const*, int)") == "k<(ggml_type)12, 1>"
    assert kernel_name("ggml_cuda::quantize_q8_1(float const*, void*, long)") == "quantize_q8_1"
    assert kernel_name("_Z3fooi") == "_Z3fooi"  # not demangled: kept as it is


def test_a_line_it_does_not_write_names_the_file_and_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(f"K 1 2 7 {MMVQ}\nK 3 x 7 {MMVQ}\n")
    with pytest.raises(UsageError, match=r"t\.txt:2: not a line of scripts/gpu-timeline\.c"):
        summarize(path, tokens=1)


def test_a_timeline_without_kernels_says_so(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("C 0 1000 7 1048576 1\n")
    with pytest.raises(UsageError, match="no kernels recorded"):
        summarize(path, tokens=1)


def test_the_script_prints_the_table_and_writes_the_json(timeline, tmp_path):
    out = tmp_path / "s.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts/gpu-timeline.py"), str(timeline), "--tokens", "2",
                          "--json", str(out)], capture_output=True, text=True, check=True)
    assert "| mul_mat_vec_q<(ggml_type)12, 1> | 1.0 | 0.1 | 0.10 | 0.10 | 0.0 |" in run.stdout
    assert json.loads(out.read_text())["tokens"] == 2
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/gpu-timeline.py"), str(timeline), "--tokens", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--tokens 0" in bad.stderr
