"""Shared fixtures: a real HTTP server on loopback, small source trees and archives, pins."""

from __future__ import annotations

import functools
import http.server
import io
import os
import shutil
import tarfile
import threading
from pathlib import Path

import gguf
import platformdirs
import pytest
from llama_tools import STORY

from builder.__main__ import main
from builder.build import BuildOptions, cuda_definitions
from builder.digest import tree_digest
from builder.fetch import ensure_source
from builder.pin import DEFAULT_PIN, load_pin
from builder.settings import CACHE_ENV, Settings
from builder.synth_model import ModelSpec, resolve_vocab, write_moe_model

SMALL_TREE = {
    "CMakeLists.txt": "cmake_minimum_required(VERSION 3.14)\nproject(tiny C)\n",
    "ggml/CMakeLists.txt": "# ggml\n",
    "ggml/src/ggml.c": "int ggml_answer(void) {\n    return 41;\n}\n",
    "src/llama.cpp": "// llama\nint llama_x = 1;\n",
    "README.md": "not covered by the digest\n",
}
SMALL_PATHS = ["CMakeLists.txt", "ggml", "src"]
TINY_VOCAB_SIZE = 300


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree" / "llama.cpp-b1"
    for rel, text in SMALL_TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_of_tree(tree: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    return path


def write_pin(path: Path, tree: Path, sources: str) -> Path:
    """A pin for the small tree, with the given [[sources]] TOML."""
    digest = tree_digest(tree, SMALL_PATHS)
    path.write_text(
        '[upstream]\nproject = "llama.cpp"\ntag = "b1"\nbuild_number = 1\n'
        f"[tree]\npaths = {SMALL_PATHS!r}\ndigest = \"{digest}\"\n" + sources
    )
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def http_server(tmp_path: Path):
    """Serves tmp_path/www on 127.0.0.1; yields (root folder, base URL). Stopped after the test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def real_pin():
    return load_pin(DEFAULT_PIN)


@pytest.fixture(scope="session")
def shared_cache() -> Path:
    """The cache the slow tests share: $EXPERTS_FIRST_CACHE, else the user cache (fetch once, build once)."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("experts-first")).resolve()


@pytest.fixture(scope="session")
def pinned_tree(shared_cache) -> Path:
    """The fetched, verified pinned llama.cpp tree."""
    assert main(["fetch", "--cache-dir", str(shared_cache)]) == 0
    return shared_cache / "src" / "llama.cpp-b11549"


@pytest.fixture(scope="session")
def cuda_check_setup(shared_cache, tmp_path_factory):
    """The pinned tree, build options with cuBLAS from the wheel (in the shared cache) and a cache of the checks' own;
    skipped without nvcc."""
    if not shutil.which("nvcc"):
        pytest.skip("nvcc is not installed")
    shared = Settings(load_pin().path, shared_cache, None, None, None, True)
    opts = BuildOptions(jobs=2, cuda_defines=cuda_definitions(shared, True, False, []))
    return ensure_source(shared), opts, tmp_path_factory.mktemp("check-cache")


@pytest.fixture(scope="session")
def cpu_builds(shared_cache, tmp_path_factory) -> Path:
    """`build --cpu --upstream --baseline` of the real pinned tree (the slow part, done once); returns the dist folder."""
    dist = tmp_path_factory.mktemp("dist")
    args = ["build", "--cpu", "--upstream", "--baseline", "--dist", str(dist), "--cache-dir", str(shared_cache)]
    assert main(args) == 0
    return dist


@pytest.fixture(scope="session")
def tiny_moe(pinned_tree, tmp_path_factory) -> Path:
    """A small qwen3moe GGUF made with the gguf package, tokenizer from the pinned tree."""
    path = tmp_path_factory.mktemp("models") / "tiny-qwen3moe.gguf"
    write_moe_model(path, ModelSpec(arch="qwen3moe", n_layer=2), resolve_vocab(None, "qwen3moe", pinned_tree))
    return path


@pytest.fixture(scope="session")
def parts_moe(pinned_tree, tmp_path_factory) -> Path:
    """tiny_moe with experts of 768 rows (n_ff, as Qwen3-30B-A3B's): three parts of 256, as the CPU worker shares them."""
    path = tmp_path_factory.mktemp("models") / "parts-qwen3moe.gguf"
    write_moe_model(path, ModelSpec(arch="qwen3moe", n_layer=2, expert_ff=768), resolve_vocab(None, "qwen3moe", pinned_tree))
    return path


@pytest.fixture(scope="session")
def tiny_vocab(tmp_path_factory) -> Path:
    """A vocab GGUF of TINY_VOCAB_SIZE made-up tokens, so model-writing tests need no llama.cpp tree."""
    path = tmp_path_factory.mktemp("vocab") / "ggml-vocab-tiny.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([f"t{i}" for i in range(TINY_VOCAB_SIZE)])
    w.add_token_types([1] * TINY_VOCAB_SIZE)
    w.add_token_merges(["t 1", "t 2"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_string("general.name", "not copied")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def story(tmp_path_factory) -> Path:
    """A short English text of our own."""
    path = tmp_path_factory.mktemp("text") / "story.txt"
    path.write_text(STORY)
    return path
