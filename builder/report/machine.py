"""What the report says about the machine: CPU model, core count, GPUs, OS."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from .schema import Machine


def _output(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """lscpu's "Model name", else /proc/cpuinfo's "model name", else what Python knows."""
    sources = [_output(["lscpu"]) if shutil.which("lscpu") else ""]
    sources.append(cpuinfo.read_text(errors="replace") if cpuinfo.exists() else "")
    for text in sources:
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    """One "name, memory, driver" line per GPU that nvidia-smi lists."""
    if not shutil.which("nvidia-smi"):
        return []
    out = _output(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
    return [line.strip() for line in out.splitlines() if line.strip()]


def describe_machine() -> Machine:
    return Machine(cpu=cpu_model(), cores=os.cpu_count() or 1, gpus=gpus(), os=platform.platform())
