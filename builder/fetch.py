"""`fetch`: get the pinned llama.cpp tree into the cache, verified."""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import log
from .archive import READ_ERRORS, extract_tree, write_tree_archive
from .digest import digest_of, file_hashes, file_sha256, missing_paths, tree_digest, tree_files
from .download import download
from .errors import FetchError, UsageError, VerifyError
from .index import find_file_url
from .pin import Pin, Source, load_pin
from .settings import Settings, add_source_arguments, resolve_index_url, settings_from_args

MARKER = ".experts-first-source.json"
MARKER_SCHEMA = 2
"""Schema 2 lists every file of the tree with its content hash; a tree with an older marker is fetched again."""
SHOWN_FILES = 10


@dataclass(frozen=True)
class SourceTree:
    """A fetched, verified copy of the pinned tree in the cache."""

    path: Path
    pin: Pin
    source: str
    """Where it came from: a pin source's name or a local path."""
    digest: str
    verified: bool
    files: tuple[str, ...]
    """Every file of the tree (relative paths): exactly the files under the pin's `[tree] paths`."""


def source_dir(settings: Settings, pin: Pin) -> Path:
    return settings.cache_dir / "src" / f"{pin.project}-{pin.tag}"


def _read_marker(tree: Path) -> dict | None:
    try:
        return json.loads((tree / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _archive_for(source: Source, settings: Settings) -> Path:
    """The source's archive in the download cache, downloaded when missing or stale."""
    dest = settings.cache_dir / "downloads" / source.archive_name
    what = f"source {source.name!r}"
    if dest.exists():
        if not settings.verify or not source.sha256 or file_sha256(dest) == source.sha256:
            log.info(f"  using cached {dest}")
            return dest
        log.warn(f"{what}: cached {dest.name} does not match the pin; downloading it again")
        dest.unlink()
    url = source.url if source.kind == "url" else find_file_url(
        resolve_index_url(settings), source.project, source.filename, what
    )
    log.info(f"  {what}: {url}")
    return download(url, dest, sha256=source.sha256 if settings.verify else "", size=source.size, what=what)


def _extract_download(archive: Path, root: str, staging: Path) -> None:
    """Extract a downloaded archive; one that cannot be read is dropped so the next try downloads it again."""
    try:
        extract_tree(archive, root, staging)
    except FetchError:
        archive.unlink(missing_ok=True)
        raise


def _unpack_local(path: Path, staging: Path) -> None:
    if path.is_dir():
        shutil.copytree(path, staging, symlinks=True)
    elif path.is_file():
        extract_tree(path, _archive_root(path), staging)
    else:
        raise FetchError(f"--source {path} does not exist", "pass a llama.cpp folder or a .tar.gz of one")


def _archive_root(archive: Path) -> str:
    """The folder inside a local archive that holds the llama.cpp tree."""
    try:
        with tarfile.open(archive) as tar:
            names = [posixpath.normpath(m.name) for m in tar if m.name.endswith("ggml/CMakeLists.txt")]
    except READ_ERRORS as exc:
        raise FetchError(
            f"--source {archive} is not a readable tar archive ({exc})", "pass a llama.cpp folder or a .tar.gz of one"
        ) from exc
    roots = sorted((posixpath.dirname(posixpath.dirname(n)) for n in names), key=len)
    if not roots:
        raise FetchError(f"--source {archive} holds no llama.cpp tree (no ggml/CMakeLists.txt)", "pass a llama.cpp folder or a .tar.gz of one")
    return roots[0]


def _check_complete(tree: Path, pin: Pin, what: str) -> None:
    missing = missing_paths(tree, pin.tree_paths)
    if missing:
        raise FetchError(f"{what}: the llama.cpp tree lacks {', '.join(missing)}",
                         f"the build needs every path of [tree] paths in {pin.path}; pass a complete {pin.label} tree")


def _verify(tree: Path, pin: Pin, what: str, verify: bool) -> dict[str, str]:
    """The content hash of every file under the pin's paths, checked against the pin's digest."""
    hashes = file_hashes(tree, pin.tree_paths)
    digest = digest_of(hashes)
    if verify and digest != pin.tree_digest:
        raise VerifyError(
            f"{what}: the llama.cpp tree does not match the pin\n  expected {pin.tree_digest}\n  got      {digest}",
            f"this is not {pin.label} as pinned in {pin.path}; use another source, or update the pin on purpose",
        )
    return hashes


def _drop_unverified(tree: Path, keep: set[str]) -> None:
    """Delete every file that the digest does not cover (the rest of the archive, a checkout's .git/),
    so that nothing unverified can reach a build."""
    for rel in set(tree_files(tree, [p.name for p in tree.iterdir()])) - keep:
        (tree / rel).unlink()
    for dirpath, _, _ in sorted(os.walk(tree), key=lambda entry: -len(entry[0])):
        if dirpath != str(tree) and not os.listdir(dirpath):
            os.rmdir(dirpath)


def _install(staging: Path, dest: Path, marker: dict) -> None:
    """Move a verified tree into place; the marker is written last, so a half tree is never taken."""
    (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(dest)


def _check_cached(tree: Path, pin: Pin, marker: dict) -> None:
    """The cached tree is still what was verified: its marker's file list digests to the pin, and every
    file on disk has the content the list records (nothing changed, added or removed)."""
    recorded = marker["files"]
    if digest_of(recorded) != pin.tree_digest:
        raise VerifyError(f"cached tree {tree}: its file list ({MARKER}) does not match the pin's digest",
                          f"the cache was tampered with; delete {tree} and fetch again")
    on_disk = file_hashes(tree, [p.name for p in tree.iterdir() if p.name != MARKER])
    changed = sorted(rel for rel in recorded.keys() & on_disk.keys() if recorded[rel] != on_disk[rel])
    problems = ([f"changed: {rel}" for rel in changed] + [f"added: {rel}" for rel in sorted(on_disk.keys() - recorded.keys())]
                + [f"removed: {rel}" for rel in sorted(recorded.keys() - on_disk.keys())])
    if problems:
        more = f"\n  ... and {len(problems) - SHOWN_FILES} more" if len(problems) > SHOWN_FILES else ""
        raise VerifyError(f"cached tree {tree} is not the verified tree:\n  " + "\n  ".join(problems[:SHOWN_FILES]) + more,
                          f"something modified the cache; delete {tree} and fetch again")


def ensure_source(settings: Settings) -> SourceTree:
    """The pinned tree from the cache, fetching it first if needed."""
    pin = load_pin(settings.pin_path)
    dest = source_dir(settings, pin)
    marker = _read_marker(dest)
    if not settings.verify:
        log.warn("--no-verify: hashes are NOT checked; the build manifest records this")
    cached = (marker and marker.get("schema") == MARKER_SCHEMA and settings.local_source is None
              and marker.get("digest") == pin.tree_digest)
    if cached:
        if settings.verify:
            _check_cached(dest, pin, marker)
        if settings.verify and not marker["verified"]:
            marker["verified"] = True
            (dest / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        return SourceTree(dest, pin, marker["source"], marker["digest"], marker["verified"], tuple(sorted(marker["files"])))

    if settings.local_source is not None:
        attempts: list[tuple[str, Source | Path]] = [(str(settings.local_source), settings.local_source)]
    elif settings.only_source:
        attempts = [(settings.only_source, pin.source(settings.only_source))]
    else:
        attempts = [(s.name, s) for s in pin.sources]

    failures = []
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    for name, origin in attempts:
        with log.group(f"fetch {pin.label} from {name}"):
            with tempfile.TemporaryDirectory(dir=settings.cache_dir, prefix=".fetch-") as tmp:
                staging = Path(tmp) / "tree"
                try:
                    if isinstance(origin, Path):
                        _unpack_local(origin, staging)
                    else:
                        _extract_download(_archive_for(origin, settings), origin.root, staging)
                    _check_complete(staging, pin, f"source {name!r}")
                    hashes = _verify(staging, pin, f"source {name!r}", settings.verify)
                except VerifyError:
                    raise
                except FetchError as exc:
                    log.warn(exc.message)
                    failures.append(f"{name}: {exc.message}")
                    continue
                _drop_unverified(staging, set(hashes))
                digest = digest_of(hashes)
                _install(staging, dest, {"schema": MARKER_SCHEMA, "source": name, "digest": digest, "verified": settings.verify,
                                         "tag": pin.tag, "files": hashes})
                return SourceTree(dest, pin, name, digest, settings.verify, tuple(sorted(hashes)))
    raise FetchError(
        f"could not fetch {pin.label} from any source, and nothing usable is cached:\n  - " + "\n  - ".join(failures),
        "check the network (or --index-url), or pass --source PATH with a llama.cpp folder or archive",
    )


def populate_parser(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the fetched tree's path, source and digest as JSON")
    parser.add_argument(
        "--export-tree", type=Path, metavar="FILE.tar.xz",
        help="also write the verified tree (the pin's paths only) to FILE.tar.xz, for a machine without network: "
             "`fetch --source FILE.tar.xz` there checks it against the pin's digest again",
    )
    parser.add_argument(
        "--print-digest", action="store_true",
        help="only print the tree digest of --source (or the cached tree) over the pin's paths, e.g. to update the pin",
    )


def main_fetch(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.print_digest:
        pin = load_pin(settings.pin_path)
        tree = settings.local_source or source_dir(settings, pin)
        if not tree.is_dir():
            raise FetchError(f"{tree} is not a folder", "pass --source DIR with an extracted llama.cpp tree")
        print(tree_digest(tree, pin.tree_paths))
        return 0
    tree = ensure_source(settings)
    if args.export_tree:
        if not tree.verified:
            raise UsageError(f"--export-tree: the cached tree {tree.path} was fetched with --no-verify",
                             "fetch it again without --no-verify before exporting it")
        write_tree_archive(tree.path, tree.files, args.export_tree)
        log.info(f"  wrote {args.export_tree} ({args.export_tree.stat().st_size / 1024 / 1024:.1f} MiB, {len(tree.files)} files)")
    if args.json:
        print(json.dumps({"path": str(tree.path), "source": tree.source, "digest": tree.digest, "verified": tree.verified, "tag": tree.pin.tag}))
    else:
        log.info(f"{tree.pin.label} ({tree.source}, {'verified' if tree.verified else 'NOT verified'}): {tree.path}")
    return 0
