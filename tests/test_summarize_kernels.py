"""scripts/summarize-kernels.py on a committed H200 run of test-backend-ops perf (device-run.sh flag-off) and on the
labels of device-run.sh's hot-kernels stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llama_tools import SCRIPTS, load_script

REPORTS = Path(__file__).resolve().parent.parent / "reports"
FLAG_OFF = REPORTS / "2026-12-02-ids-ext-on-the-gpu" / "flag-off-kernels.txt"
HOT_KERNELS = REPORTS / "2026-12-07-hot-kernels-h100" / "hot-kernels.txt"
COLD_FIRST = REPORTS / "2026-12-07-cold-first-decay-h100" / "hot-kernels.txt"


def test_committed_kernel_runs_give_medians_per_build_and_ratios_to_the_first():
    kernels = load_script("summarize-kernels")
    summary = kernels.summarize(kernels.read_runs(FLAG_OFF.read_text()))
    assert summary["settings"] == ["baseline-cuda-sm90", "cuda-sm90"]
    assert len(summary["cases"]) == 8
    one_token = "MUL_MAT_ID(type_a=q4_K,type_b=f32,n_mats=128,n_used=8,b=0,m=768,n=1,k=2048,amax=1.000000,m_v=0)"
    assert summary["runs"]["baseline-cuda-sm90"][one_token][0] == 8.40
    assert len(summary["runs"]["cuda-sm90"][one_token]) == 2
    fork = summary["median_us"]["cuda-sm90"][one_token]
    base = summary["median_us"]["baseline-cuda-sm90"][one_token]
    assert summary["vs_first"]["cuda-sm90"][one_token] == pytest.approx(fork / base, abs=1e-3)
    assert "baseline-cuda-sm90" not in summary["vs_first"]


def test_hot_kernel_labels_name_the_setting_without_the_round(tmp_path):
    line = "MUL_MAT_ID_HOT(type_a=q4_K,n_mats=128,n_hot=128,n_used=8,b=0,glu=0,m=2048,n=1,k=768): 2226 runs -  {us} us/run - 25 MFLOP/run"
    text = "\n".join([
        "round 1 as built:   " + line.format(us="10.00"), "round 1 EF_MMVQ_DROP=8:   " + line.format(us="7.50"),
        "round 2 as built:   " + line.format(us="12.00"), "round 2 EF_MMVQ_DROP=8:   " + line.format(us="8.50"),
        "== 05:00:00 hot kernels round 2 as built",  # a log line among them is passed over
    ])
    (tmp_path / "hot-kernels.txt").write_text(text + "\n")
    subprocess.run([sys.executable, str(SCRIPTS / "summarize-kernels.py"), str(tmp_path / "hot-kernels.txt")], check=True,
                   capture_output=True)
    summary = json.loads((tmp_path / "hot-kernels.json").read_text())
    assert summary["settings"] == ["as built", "EF_MMVQ_DROP=8"]
    case = summary["cases"][0]
    assert summary["median_us"] == {"as built": {case: 11.0}, "EF_MMVQ_DROP=8": {case: 8.0}}
    assert summary["vs_first"] == {"EF_MMVQ_DROP=8": {case: round(8.0 / 11.0, 3)}}
    assert "| 8.00 (0.727) |" in (tmp_path / "hot-kernels.md").read_text()
    assert (tmp_path / "hot-kernels.png").stat().st_size > 0


def test_committed_hot_kernel_run_gives_the_report_s_figures():
    """reports/2026-12-07-hot-kernels-h100/README.md quotes these medians: the all-hot ids_ext kernel against upstream's,
    and without mmvq_cold_first or without all four parts"""
    kernels = load_script("summarize-kernels")
    summary = kernels.summarize(kernels.read_runs(HOT_KERNELS.read_text()))
    assert len(summary["settings"]) == 8 and len(summary["cases"]) == 8
    shape = "n_used=8,b=0,{}m=768,n=1,k=2048,"
    upstream = next(c for c in summary["cases"] if c.startswith("MUL_MAT_ID(") and shape.format("") in c)
    all_hot = next(c for c in summary["cases"] if "n_hot=128," in c and shape.format("glu=0,") in c)
    median = summary["median_us"]
    assert median["as built"][upstream] == pytest.approx(8.29, abs=0.005)
    assert median["as built"][all_hot] == pytest.approx(11.54, abs=0.005)
    assert median["EF_MMVQ_DROP=1"][all_hot] == pytest.approx(9.75, abs=0.005)
    assert median["EF_MMVQ_DROP=15"][all_hot] == pytest.approx(8.65, abs=0.005)


def test_committed_cold_first_run_gives_the_report_s_figures():
    """reports/2026-12-07-cold-first-decay-h100/README.md quotes these: the all-hot kernel as built, with the candidate
    ordering (320), without mmvq_cold_first (1), at both shapes"""
    kernels = load_script("summarize-kernels")
    summary = kernels.summarize(kernels.read_runs(COLD_FIRST.read_text()))
    assert summary["settings"] == ["as built", "EF_MMVQ_DROP=1", "EF_MMVQ_DROP=320", "EF_MMVQ_DROP=32", "EF_MMVQ_DROP=15"]
    median = summary["median_us"]
    quoted = {"m=768,n=1,k=2048,": {"as built": 12.20, "EF_MMVQ_DROP=1": 10.13, "EF_MMVQ_DROP=320": 11.37},
              "m=2048,n=1,k=768,": {"as built": 10.62, "EF_MMVQ_DROP=1": 9.24, "EF_MMVQ_DROP=320": 9.72}}
    for shape, us in quoted.items():
        all_hot = next(c for c in summary["cases"] if "n_hot=128," in c and shape in c)
        for setting, value in us.items():
            assert median[setting][all_hot] == pytest.approx(value, abs=0.005)


def test_a_file_without_perf_lines_is_refused_with_what_it_expected(tmp_path):
    kernels = load_script("summarize-kernels")
    with pytest.raises(SystemExit, match="no test-backend-ops perf lines"):
        kernels.summarize(kernels.read_runs("== 05:00:00 hot kernels round 1 as built\nexit 1\n"))
