"""The default of --jobs and -t: the CPUs this process may use, not the machine's count."""

from __future__ import annotations

import os
from pathlib import Path

from builder.cpus import cgroup_cpu_limit, usable_cpus


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_tightest_level_rounded_up(tmp_path):
    root, proc = tmp_path / "cgroup", tmp_path / "self-cgroup"
    _write(proc, "0::/ci/job\n")
    _write(root / "ci" / "cpu.max", "250000 100000\n")  # 2.5 CPUs for the parent
    _write(root / "ci" / "job" / "cpu.max", "max 100000\n")  # no limit of its own
    assert cgroup_cpu_limit(proc, root) == 3
    _write(root / "ci" / "job" / "cpu.max", "50000 100000\n")
    assert cgroup_cpu_limit(proc, root) == 1


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    root, proc = tmp_path / "cgroup", tmp_path / "self-cgroup"
    _write(proc, "4:memory:/x\n2:cpu,cpuacct:/x\n")
    _write(root / "cpu,cpuacct" / "x" / "cpu.cfs_quota_us", "400000\n")
    _write(root / "cpu,cpuacct" / "x" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(proc, root) == 4
    _write(root / "cpu,cpuacct" / "x" / "cpu.cfs_quota_us", "-1\n")  # unlimited
    assert cgroup_cpu_limit(proc, root) is None
    assert cgroup_cpu_limit(tmp_path / "no-such-file", root) is None


def test_usable_cpus_follow_the_affinity_mask():
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert usable_cpus() == 1
    finally:
        os.sched_setaffinity(0, allowed)
    assert 1 <= usable_cpus() <= len(allowed)
