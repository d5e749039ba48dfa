"""fetch against a real HTTP server on loopback, with real archives."""

from __future__ import annotations

import json
import random
import tarfile
from pathlib import Path

import pytest

from builder.__main__ import main
from builder.digest import file_sha256
from builder.fetch import MARKER
from conftest import SMALL_TREE, make_tar, tar_of_tree, write_pin

DEAD_URL = "http://127.0.0.1:9/x.tar.gz"  # the discard port: nothing listens there


def fetch(pin: Path, cache: Path, *extra: str) -> int:
    return main(["fetch", "--pin", str(pin), "--cache-dir", str(cache), *extra])


def url_source(url: str, sha256: str = "", root: str = "llama.cpp-b1") -> str:
    sha = f'sha256 = "{sha256}"\n' if sha256 else ""
    return f'[[sources]]\nname = "web"\nkind = "url"\nurl = "{url}"\nroot = "{root}"\n{sha}'


def test_good_archive_is_fetched_verified_and_cached(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    tar_of_tree(small_tree, www / "b1.tar.gz")
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz", file_sha256(www / "b1.tar.gz")))
    cache = tmp_path / "cache"
    assert fetch(pin, cache, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    tree = Path(result["path"])
    assert result["verified"] and result["source"] == "web"
    assert (tree / "ggml/src/ggml.c").read_text() == small_tree.joinpath("ggml/src/ggml.c").read_text()
    assert json.loads((tree / MARKER).read_text())["verified"] is True
    assert not list(cache.glob("**/*.partial"))


def test_warm_cache_needs_no_network(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    tar_of_tree(small_tree, www / "b1.tar.gz")
    cache = tmp_path / "cache"
    assert fetch(write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz")), cache) == 0
    capsys.readouterr()
    # same pin, but its only source is now unreachable
    offline = write_pin(tmp_path / "offline.toml", small_tree, url_source(DEAD_URL))
    assert fetch(offline, cache) == 0
    assert "downloading" not in capsys.readouterr().err


def test_cold_cache_and_server_down_says_what_to_do(small_tree, tmp_path, capsys):
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    assert fetch(pin, tmp_path / "cache") == 3
    err = capsys.readouterr().err
    assert "could not fetch llama.cpp b1 from any source" in err
    assert "web: " in err and "--source PATH" in err
    assert not (tmp_path / "cache" / "src").exists()


def test_wrong_archive_hash_stops_and_keeps_nothing(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    tar_of_tree(small_tree, www / "b1.tar.gz")
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz", "0" * 64))
    cache = tmp_path / "cache"
    assert fetch(pin, cache) == 4
    err = capsys.readouterr().err
    assert "wrong sha256" in err and "0" * 64 in err and file_sha256(www / "b1.tar.gz") in err
    assert not list((cache / "downloads").iterdir())
    assert not (cache / "src").exists()


def test_tree_digest_mismatch_names_source_expected_and_got(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz"))
    small_tree.joinpath("ggml/src/ggml.c").write_text("int ggml_answer(void) { return 42; }\n")
    tar_of_tree(small_tree, www / "b1.tar.gz")
    assert fetch(pin, tmp_path / "cache") == 4
    err = capsys.readouterr().err
    assert "source 'web': the llama.cpp tree does not match the pin" in err
    assert "expected sha256:" in err and "got      sha256:" in err
    assert not (tmp_path / "cache" / "src").exists()


def test_no_verify_is_loud_and_recorded(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz"))
    small_tree.joinpath("src/llama.cpp").write_text("// changed\n")
    tar_of_tree(small_tree, www / "b1.tar.gz")
    assert fetch(pin, tmp_path / "cache", "--no-verify", "--json") == 0
    captured = capsys.readouterr()
    assert "--no-verify: hashes are NOT checked" in captured.err
    assert json.loads(captured.out)["verified"] is False
    # a later verified fetch re-checks the cached tree instead of trusting it
    assert fetch(pin, tmp_path / "cache") == 4


def test_truncated_archive_is_refused_and_dropped(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    whole = tar_of_tree(small_tree, tmp_path / "whole.tar.gz").read_bytes()
    (www / "b1.tar.gz").write_bytes(whole[: len(whole) // 2])
    cache = tmp_path / "cache"
    assert fetch(write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz")), cache) == 3
    assert "truncated or corrupt" in capsys.readouterr().err
    assert not (cache / "src").exists()
    assert not (cache / "downloads" / "b1.tar.gz").exists()


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"x") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize(
    "member, message",
    [
        (_info("llama.cpp-b1/../../evil.txt"), "points outside the archive"),
        (_info("/etc/evil.txt"), "points outside the archive"),
        (_info("llama.cpp-b1/src/out", tarfile.SYMTYPE, "../../../etc/passwd"), "leaves the tree"),
        (_info("llama.cpp-b1/src/abs", tarfile.SYMTYPE, "/etc/passwd"), "leaves the tree"),
        (_info("llama.cpp-b1/dev", tarfile.CHRTYPE), "is a device file"),
        (_info("llama.cpp-b1/src/fifo", tarfile.FIFOTYPE), "is a FIFO"),
        (_info("llama.cpp-b1/src/hard", tarfile.LNKTYPE, "../../etc/passwd"), "leaves the tree"),
        (_info("llama.cpp-b1/src/hard", tarfile.LNKTYPE, "llama.cpp-b1/src/none.c"), "names no file of the tree"),
    ],
)
def test_unsafe_members_are_refused(member, message, http_server, tmp_path, small_tree, capsys):
    www, base = http_server
    make_tar(www / "b1.tar.gz", [_info("llama.cpp-b1/CMakeLists.txt"), member])
    cache = tmp_path / "cache"
    assert fetch(write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz")), cache) == 3
    assert message in capsys.readouterr().err
    assert not (cache / "src").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_hard_links_inside_the_tree_are_files_of_it(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    (small_tree / "src" / "copy.c").write_text(SMALL_TREE["ggml/src/ggml.c"])
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz"))
    members = [_info(f"llama.cpp-b1/{rel}", data=text.encode()) for rel, text in SMALL_TREE.items()]
    make_tar(www / "b1.tar.gz", [*members, _info("llama.cpp-b1/src/copy.c", tarfile.LNKTYPE, "llama.cpp-b1/ggml/src/ggml.c")])
    assert fetch(pin, tmp_path / "cache", "--json") == 0
    tree = Path(json.loads(capsys.readouterr().out)["path"])
    assert (tree / "src" / "copy.c").read_text() == SMALL_TREE["ggml/src/ggml.c"]


def test_a_hard_link_to_a_file_outside_the_tree_is_refused(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    make_tar(www / "b1.tar.gz", [_info("secret.txt", data=b"not the tree's"), _info("llama.cpp-b1/CMakeLists.txt"),
                                 _info("llama.cpp-b1/src/llama.cpp", tarfile.LNKTYPE, "secret.txt")])
    cache = tmp_path / "cache"
    assert fetch(write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz")), cache) == 3
    assert "hard link 'llama.cpp-b1/src/llama.cpp' -> 'secret.txt' names no file of the tree" in capsys.readouterr().err
    assert not (cache / "src").exists()


def test_package_index_source(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    sdist = tar_of_tree(small_tree, tmp_path / "tinyproj-1.0.tar.gz")
    (www / "files").mkdir()
    (www / "files" / sdist.name).write_bytes(sdist.read_bytes())
    (www / "simple" / "tinyproj").mkdir(parents=True)
    (www / "simple" / "tinyproj" / "index.html").write_text(
        f'<html><body><a href="../../files/{sdist.name}#sha256={file_sha256(sdist)}">{sdist.name}</a></body></html>'
    )
    source = (
        '[[sources]]\nname = "index"\nkind = "index"\nproject = "tinyproj"\nversion = "1.0"\n'
        f'filename = "{sdist.name}"\nsha256 = "{file_sha256(sdist)}"\nroot = "llama.cpp-b1"\n'
    )
    pin = write_pin(tmp_path / "pin.toml", small_tree, source)
    assert fetch(pin, tmp_path / "cache", "--index-url", f"{base}/simple/", "--json") == 0
    assert json.loads(capsys.readouterr().out)["source"] == "index"


def test_sources_are_tried_in_order(small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    tar_of_tree(small_tree, www / "b1.tar.gz")
    sources = url_source(DEAD_URL).replace('"web"', '"dead"') + url_source(f"{base}/b1.tar.gz")
    assert fetch(write_pin(tmp_path / "pin.toml", small_tree, sources), tmp_path / "cache", "--json") == 0
    captured = capsys.readouterr()
    assert "source 'dead': cannot download" in captured.err
    assert json.loads(captured.out)["source"] == "web"


@pytest.mark.parametrize("as_archive", [False, True])
def test_local_source(as_archive, small_tree, tmp_path, capsys):
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    local = tar_of_tree(small_tree, tmp_path / "local.tar.gz") if as_archive else small_tree
    assert fetch(pin, tmp_path / "cache", "--source", str(local), "--json") == 0
    assert json.loads(capsys.readouterr().out)["source"] == str(local)


def test_only_the_digested_files_are_cached(small_tree, tmp_path, capsys):
    """A checkout's .git/ and files outside the pin's paths never reach the cache, so never a build."""
    (small_tree / ".git").mkdir()
    (small_tree / ".git" / "HEAD").write_text("ref: refs/heads/master\n")
    (small_tree / "app").mkdir()
    (small_tree / "app" / "CMakeLists.txt").write_text("message(FATAL_ERROR unverified)\n")
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    assert fetch(pin, tmp_path / "cache", "--source", str(small_tree), "--json") == 0
    tree = Path(json.loads(capsys.readouterr().out)["path"])
    cached = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file() and p.name != MARKER)
    assert cached == ["CMakeLists.txt", "ggml/CMakeLists.txt", "ggml/src/ggml.c", "src/llama.cpp"]
    assert sorted(p.name for p in tree.iterdir()) == sorted([MARKER, "CMakeLists.txt", "ggml", "src"])


@pytest.mark.parametrize("tamper, message", [
    (lambda tree: (tree / "ggml/src/ggml.c").write_text("int ggml_answer(void) { return 0; }\n"), "changed: ggml/src/ggml.c"),
    (lambda tree: (tree / "src/extra.c").write_text("int x;\n"), "added: src/extra.c"),
    (lambda tree: (tree / "src/llama.cpp").unlink(), "removed: src/llama.cpp"),
])
def test_a_modified_cached_tree_stops_naming_the_file(tamper, message, small_tree, http_server, tmp_path, capsys):
    www, base = http_server
    tar_of_tree(small_tree, www / "b1.tar.gz")
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(f"{base}/b1.tar.gz"))
    cache = tmp_path / "cache"
    assert fetch(pin, cache) == 0
    tamper(cache / "src" / "llama.cpp-b1")
    capsys.readouterr()
    assert fetch(pin, cache) == 4
    err = capsys.readouterr().err
    assert "is not the verified tree" in err and message in err
    assert "delete " in err  # the hint says what to do
    assert fetch(pin, cache, "--no-verify") == 0  # only an explicit --no-verify takes it as it is


def test_a_tampered_file_list_is_refused(small_tree, tmp_path, capsys):
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    cache = tmp_path / "cache"
    assert fetch(pin, cache, "--source", str(small_tree)) == 0
    tree = cache / "src" / "llama.cpp-b1"
    (tree / "ggml/src/ggml.c").write_text("int ggml_answer(void) { return 0; }\n")
    marker = json.loads((tree / MARKER).read_text())
    marker["files"]["ggml/src/ggml.c"] = file_sha256(tree / "ggml/src/ggml.c")  # the record follows the change
    (tree / MARKER).write_text(json.dumps(marker))
    capsys.readouterr()
    assert fetch(pin, cache) == 4
    assert "its file list (.experts-first-source.json) does not match the pin's digest" in capsys.readouterr().err


@pytest.mark.parametrize("verify", [[], ["--no-verify"]])
def test_a_source_missing_a_folder_fails_in_fetch_naming_it(verify, small_tree, tmp_path, capsys):
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    for path in (small_tree / "src").iterdir():
        path.unlink()
    (small_tree / "src").rmdir()
    assert fetch(pin, tmp_path / "cache", "--source", str(small_tree), *verify) == 3
    assert "the llama.cpp tree lacks src" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "src").exists()


def test_print_digest_matches_pin(small_tree, tmp_path, capsys):
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    assert fetch(pin, tmp_path / "cache", "--print-digest", "--source", str(small_tree)) == 0
    assert capsys.readouterr().out.strip() in pin.read_text()


@pytest.mark.network
def test_real_pin_fetches_from_the_package_index(shared_cache, real_pin, capsys):
    """The pinned b11549 tree, through pip's configured index (or the shared cache when warm)."""
    assert main(["fetch", "--cache-dir", str(shared_cache), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["digest"] == real_pin.tree_digest and result["verified"]


def test_an_exported_tree_fetches_verified_on_a_machine_without_network(small_tree, tmp_path, capsys):
    # the device has no network: scripts/device-carry.sh exports the verified tree, the device fetches it with --source
    (small_tree / "app").mkdir()
    (small_tree / "app" / "CMakeLists.txt").write_text("message(FATAL_ERROR unverified)\n")
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    exported = tmp_path / "tree.tar.xz"
    assert fetch(pin, tmp_path / "here", "--source", str(small_tree), "--export-tree", str(exported)) == 0
    with tarfile.open(exported) as tar:
        assert sorted(tar.getnames()) == [f"llama.cpp-b1/{rel}" for rel in
                                          ["CMakeLists.txt", "ggml/CMakeLists.txt", "ggml/src/ggml.c", "src/llama.cpp"]]
    capsys.readouterr()
    assert fetch(pin, tmp_path / "there", "--source", str(exported), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verified"] and result["source"] == str(exported)
    assert Path(result["path"], "ggml/src/ggml.c").read_text() == small_tree.joinpath("ggml/src/ggml.c").read_text()
    assert not list(tmp_path.glob("*.part"))


def test_an_exported_tree_changed_on_the_way_is_refused(small_tree, tmp_path, capsys):
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    small_tree.joinpath("src/llama.cpp").write_text("// changed\n")
    changed = tmp_path / "changed.tar.xz"
    with tarfile.open(changed, "w:xz") as tar:
        tar.add(small_tree, arcname="llama.cpp-b1")
    assert fetch(pin, tmp_path / "there", "--source", str(changed)) == 4
    assert "the llama.cpp tree does not match the pin" in capsys.readouterr().err
    assert not (tmp_path / "there" / "src").exists()


@pytest.mark.parametrize("damage", [
    lambda whole: whole[: len(whole) // 2],  # cut: the stream ends early
    lambda whole: whole[:50_000] + bytes(b ^ 0xFF for b in whole[50_000:50_040]) + whole[50_040:],  # corrupt: lzma's own error
], ids=["cut", "corrupt"])
def test_a_damaged_exported_tree_is_named(damage, small_tree, tmp_path, capsys):
    # a file xz cannot shrink, so the damage lies past what opening the archive decompresses
    small_tree.joinpath("ggml/src/ggml.c").write_text(random.Random(0).randbytes(100_000).hex())
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    exported = tmp_path / "tree.tar.xz"
    assert fetch(pin, tmp_path / "here", "--source", str(small_tree), "--export-tree", str(exported)) == 0
    damaged = tmp_path / "damaged.tar.xz"
    damaged.write_bytes(damage(exported.read_bytes()))
    capsys.readouterr()
    assert fetch(pin, tmp_path / "there", "--source", str(damaged)) == 3
    assert f"--source {damaged} is not a readable tar archive" in capsys.readouterr().err


def test_a_tree_fetched_without_verifying_is_not_exported(small_tree, tmp_path, capsys):
    pin = write_pin(tmp_path / "pin.toml", small_tree, url_source(DEAD_URL))
    exported = tmp_path / "tree.tar.xz"
    assert fetch(pin, tmp_path / "here", "--source", str(small_tree), "--no-verify", "--export-tree", str(exported)) == 2
    assert "--export-tree: the cached tree" in capsys.readouterr().err
    assert not exported.exists()
