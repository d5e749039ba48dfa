"""builder.huge_pages: a run records the huge pages the kernel gave its process (patch 0031's A/B needs them seen)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from builder import huge_pages

# a child that maps 18 MiB (whole 2 MiB pages lie inside wherever it starts), asks for huge pages (or not), touches every page and stays a second
CHILD = textwrap.dedent("""
    import mmap, sys, time
    size = 16 << 20
    m = mmap.mmap(-1, size + (2 << 20), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if sys.argv[1] == "huge":
        m.madvise(mmap.MADV_HUGEPAGE)
    for i in range(0, len(m), 4096):
        m[i] = 1
    print("touched", flush=True)
    time.sleep(1.0)
""")


def child(kind: str) -> list[str]:
    return [sys.executable, "-c", CHILD, kind]


@pytest.mark.skipif(huge_pages.thp_mode() not in ("always", "madvise"), reason="the kernel gives no transparent huge pages here")
def test_a_process_that_asks_for_huge_pages_is_seen_to_have_them():
    finished = huge_pages.run(child("huge"), timeout=30)
    assert finished.rc == 0, finished.output
    assert "touched" in finished.output
    assert finished.anon_huge_mib is not None and finished.anon_huge_mib >= 2


@pytest.mark.skipif(huge_pages.thp_mode() != "madvise", reason="only THP's madvise mode leaves a process that does not ask in 4 KiB pages")
def test_a_process_that_does_not_ask_has_none():
    finished = huge_pages.run(child("small"), timeout=30)
    assert finished.rc == 0, finished.output
    assert finished.anon_huge_mib == 0


def test_a_run_past_its_limit_is_killed_and_says_so():
    finished = huge_pages.run([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], timeout=1)
    assert finished.rc == "timeout"
    assert "started" in finished.output


def test_the_exit_status_and_both_streams_come_back():
    finished = huge_pages.run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"], timeout=30)
    assert finished.rc == 3
    assert finished.output.index("out") < finished.output.index("err")


def test_the_kernel_mode_is_read_from_its_brackets(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert huge_pages.thp_mode(f) == "madvise"
    assert huge_pages.thp_mode(tmp_path / "missing") is None
