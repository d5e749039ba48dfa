"""scripts/bus-read-probe.cu, the GPU's reads of mapped host memory (scripts/device-run.sh bus-probe), compiles here without a
warning; running it needs a GPU (reports/2026-12-05-stage-cold-rows)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_probe_compiles_without_warnings(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("no nvcc on PATH")
    out = tmp_path / "bus-read-probe"
    subprocess.run([nvcc, "-O3", "-arch=sm_75", "--Werror", "all-warnings", "-o", str(out), str(ROOT / "scripts/bus-read-probe.cu")],
                   check=True)
    assert out.is_file()
