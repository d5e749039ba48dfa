"""How many CPUs this process may use: the default for compile jobs and tool threads."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> int | None:
    """The CPU quota of this process's cgroup and its parents (v2 `cpu.max`, or v1 `cpu.cfs_quota_us`
    / `cpu.cfs_period_us`), rounded up to whole CPUs; None when there is none or it cannot be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy, every level can limit
            folder = root / path.lstrip("/")
            for level in (folder, *folder.parents):
                quota, _, period = _read(level / "cpu.max").partition(" ")
                if quota not in ("", "max") and period:
                    limits.append(int(quota) / int(period))
                if level == root:
                    break
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's folder
            folder = root / controllers / path.lstrip("/")
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0:
                limits.append(int(quota) / int(period))
    return max(1, math.ceil(min(limits))) if limits else None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), capped by its cgroup's CPU quota."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return min(count, limit) if limit else count
