"""The patch series: parsing, check, apply with rollback, and the dev/export round trip."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builder.__main__ import main, make_parser
from builder.build import BuildOptions, build_variant, prepare_source, work_dir
from builder.errors import PatchError
from builder.fetch import ensure_source
from builder.patches import apply_series, check_series, export_series, make_dev_tree, read_series
from builder.settings import settings_from_args
from builder.variants import Variant
from conftest import write_pin

SERIES_HEAD = "# comment line\n\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def make_series(small_tree: Path, tmp_path: Path, edits: list[tuple[str, str, str]]) -> Path:
    """Patch files made by real git commits on a copy of the small tree; one (file, old, new) per patch."""
    work = tmp_path / "author"
    subprocess.run(["cp", "-a", str(small_tree), str(work)], check=True)
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "base")
    git(work, "tag", "base")
    for i, (rel, old, new) in enumerate(edits, 1):
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text() if path.exists() else ""
        path.write_text(text.replace(old, new) if old else text + new)
        git(work, "add", "-A")
        git(work, "commit", "-qm", f"area : change number {i}\n\nWhy: because test {i} needs it.")
    patches = tmp_path / "patches"
    patches.mkdir()
    git(work, "format-patch", "-q", "-N", "--zero-commit", "--no-signature", "-o", str(patches), "base..HEAD")
    names = sorted(p.name for p in patches.glob("*.patch"))
    (patches / "series").write_text(SERIES_HEAD + "\n".join(names) + "\n")
    return patches


EDITS = [
    ("ggml/src/ggml.c", "return 41;", "return 42;"),
    ("src/llama.cpp", "", "int llama_y = 2;\n"),
    ("src/new-file.h", "", "#pragma once\n"),
]


def test_series_skips_comments_and_blank_lines(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS)
    assert [p.name for p in read_series(patches)] == sorted(p.name for p in patches.glob("*.patch"))


@pytest.mark.parametrize(
    "series, message",
    [("missing.patch\n", "does not exist"), ("{first}\n{first}\n", "is listed twice")],
)
def test_series_errors_name_the_line(series, message, small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS[:1])
    first = next(patches.glob("*.patch")).name
    (patches / "series").write_text(series.format(first=first))
    with pytest.raises(PatchError, match=f"series:\\d+: .*{message}"):
        read_series(patches)


def test_apply_series_applies_in_order(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS)
    apply_series(small_tree, read_series(patches))
    assert "return 42;" in (small_tree / "ggml/src/ggml.c").read_text()
    assert (small_tree / "src/new-file.h").exists()


def test_failed_patch_names_file_and_hunk_and_rolls_back(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS)
    (small_tree / "src/llama.cpp").write_text("// someone else changed this\nint llama_x = 7;\n")
    before = {p: p.read_text() for p in small_tree.rglob("*") if p.is_file()}
    with pytest.raises(PatchError) as err:
        apply_series(small_tree, read_series(patches))
    assert "0002-area-change-number-2.patch does not apply" in err.value.message
    assert "src/llama.cpp: hunk #1 (@@ -1,2 +1,3 @@)" in err.value.message
    # the first patch, which applied, was undone: the tree is never half patched
    assert {p: p.read_text() for p in small_tree.rglob("*") if p.is_file()} == before


def test_check_reports_each_patch(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS)
    (small_tree / "src/llama.cpp").write_text("int llama_x = 7;\n")
    statuses = [(r["status"], r["patch"][:4]) for r in check_series(small_tree, read_series(patches))]
    assert statuses == [("applies", "0001"), ("conflicts", "0002"), ("skipped", "0003")]


def test_check_detects_an_already_applied_patch(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS[:1])
    apply_series(small_tree, read_series(patches))
    [result] = check_series(small_tree, read_series(patches))
    assert result["detail"] == "it is already applied"


def test_dev_then_export_round_trip_is_lossless(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS)
    # the canonical form is what export writes; export once, then round-trip
    series = read_series(patches)
    dev = tmp_path / "dev"
    make_dev_tree(small_tree, dev, series, "b1")
    export_series(dev, patches)
    first = {p.name: p.read_bytes() for p in patches.iterdir()}
    dev2 = tmp_path / "dev2"
    make_dev_tree(small_tree, dev2, read_series(patches), "b1")
    export_series(dev2, patches)
    assert {p.name: p.read_bytes() for p in patches.iterdir()} == first
    assert not any(line.startswith("index ") for b in first.values() for line in b.decode().splitlines())
    assert git(dev2, "log", "--format=%s", "upstream..HEAD").split("\n")[:3] == [
        "area : change number 3", "area : change number 2", "area : change number 1"]


def test_export_picks_up_a_new_commit(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS[:1])
    dev = tmp_path / "dev"
    make_dev_tree(small_tree, dev, read_series(patches), "b1")
    (dev / "src/llama.cpp").write_text("int llama_x = 3;\n")
    git(dev, "commit", "-qam", "llama : set x to 3\n\nWhat and why.")
    export_series(dev, patches)
    series = read_series(patches)
    assert [p.subject() for p in series] == ["area : change number 1", "llama : set x to 3"]
    fresh = tmp_path / "fresh"
    subprocess.run(["cp", "-a", str(small_tree), str(fresh)], check=True)
    apply_series(fresh, series)
    assert (fresh / "src/llama.cpp").read_text() == "int llama_x = 3;\n"


def test_export_refuses_uncommitted_work(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS[:1])
    dev = tmp_path / "dev"
    make_dev_tree(small_tree, dev, read_series(patches), "b1")
    (dev / "src/llama.cpp").write_text("dirty\n")
    assert main(["patches", "export", str(dev), "--patches-dir", str(patches)]) == 2


def _source_for(small_tree: Path, tmp_path: Path) -> list[str]:
    pin = write_pin(tmp_path / "pin.toml", small_tree, '[[sources]]\nname = "none"\nkind = "url"\nurl = "http://127.0.0.1:9/x"\nroot = ""\n')
    return ["--pin", str(pin), "--cache-dir", str(tmp_path / "cache"), "--source", str(small_tree)]


def test_patches_check_command_json(small_tree, tmp_path, capsys):
    patches = make_series(small_tree, tmp_path, EDITS)
    (patches / "stray.patch").write_text("not in series\n")
    code = main(["patches", "check", "--json", "--patches-dir", str(patches), *_source_for(small_tree, tmp_path)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["status"] for r in report["patches"]] == ["applies"] * 3
    assert report["unused"] == ["stray.patch"]


def test_patches_check_exits_5_naming_the_rejected_hunk(small_tree, tmp_path, capsys):
    patches = make_series(small_tree, tmp_path, EDITS)
    (small_tree / "src/llama.cpp").write_text("int llama_x = 7;\n")  # upstream moved on
    assert main(["patches", "check", "--patches-dir", str(patches), *_source_for(small_tree, tmp_path)]) == 5
    out = capsys.readouterr().out
    assert "conflicts  0002-area-change-number-2.patch: src/llama.cpp: hunk #1 (@@ -1,2 +1,3 @@) does not apply" in out
    assert "skipped  0003-area-change-number-3.patch" in out


def test_a_build_stops_on_a_patch_that_no_longer_applies_with_nothing_half_applied(small_tree, tmp_path):
    patches = make_series(small_tree, tmp_path, EDITS)
    (small_tree / "src/llama.cpp").write_text("int llama_x = 7;\n")  # upstream moved on: 0002 no longer applies
    settings = settings_from_args(make_parser().parse_args(["fetch", *_source_for(small_tree, tmp_path)]))
    tree = ensure_source(settings)
    src = work_dir(settings, Variant(None)) / "src"
    src.parent.mkdir(parents=True)
    prepare_source(tree, [], src, tmp_path / "log")  # the build folder as an earlier build left it
    before = {p: p.read_text() for p in src.rglob("*") if p.is_file()}
    with pytest.raises(PatchError) as err:
        build_variant(tree, Variant(None), settings, BuildOptions(), patches_dir=patches)
    assert err.value.exit_code == 5
    assert "patch 0002-area-change-number-2.patch does not apply" in err.value.message
    assert "src/llama.cpp: hunk #1 (@@ -1,2 +1,3 @@) does not apply" in err.value.message
    # 0001 applied to a scratch copy only: the build folder is as it was, not half patched
    assert {p: p.read_text() for p in src.rglob("*") if p.is_file()} == before


@pytest.mark.network
def test_real_series_applies_to_the_real_pinned_tree(shared_cache, capsys):
    assert main(["patches", "check", "--json", "--cache-dir", str(shared_cache)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert all(r["status"] == "applies" for r in report["patches"])
    assert report["unused"] == []


def test_series_flags_and_baseline_subset(small_tree, tmp_path):
    from builder.build import series_for

    patches = make_series(small_tree, tmp_path, EDITS)
    names = sorted(p.name for p in patches.glob("*.patch"))
    (patches / "series").write_text(f"{names[0]}\n{names[1]} baseline\n{names[2]}\n")
    assert [p.name for p in series_for(Variant(None, "baseline"), patches)] == [names[1]]
    assert series_for(Variant(None, "upstream"), patches) == []
    assert len(series_for(Variant(None), patches)) == 3
    # export keeps the flag of a patch whose name stays
    dev = tmp_path / "dev"
    make_dev_tree(small_tree, dev, read_series(patches), "b1")
    export_series(dev, patches)
    assert [p.flags for p in read_series(patches)] == [(), ("baseline",), ()]
    (patches / "series").write_text(f"{names[0]} hot\n")
    with pytest.raises(PatchError, match="unknown flag 'hot'"):
        read_series(patches)


@pytest.mark.slow
@pytest.mark.network
def test_real_series_dev_export_round_trip(shared_cache, tmp_path):
    """dev then export on the real pinned tree gives back the committed series byte for byte."""
    from builder.patches import PATCHES_DIR

    copy = tmp_path / "patches"
    subprocess.run(["cp", "-a", str(PATCHES_DIR), str(copy)], check=True)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    assert main(["patches", "dev", str(tmp_path / "dev"), "--patches-dir", str(copy), "--cache-dir", str(shared_cache)]) == 0
    assert main(["patches", "export", str(tmp_path / "dev"), "--patches-dir", str(copy)]) == 0
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
