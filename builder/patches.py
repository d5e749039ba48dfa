"""The patch series: reading `patches/series`, applying it, and editing it as a git work tree."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import log
from .errors import CommandError, PatchError, UsageError
from .fetch import ensure_source
from .pin import REPO_ROOT
from .run import run
from .settings import add_source_arguments, settings_from_args

PATCHES_DIR = REPO_ROOT / "patches"
SERIES_HEADER = (
    "# The fork, as patches against the pinned llama.cpp, applied in this order.\n"
    "# A line is a patch file name, then optional flags: `baseline` also applies the patch to the\n"
    "# baseline variants (upstream + routing control, log flush). Edit the series with\n"
    "# `python -m builder patches dev DIR` and `python -m builder patches export DIR`.\n"
)
UPSTREAM_TAG = "upstream"
DEV_IDENTITY = ["-c", "user.name=experts-first", "-c", "user.email=dev@experts-first.invalid"]
FILE_RE = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)
HUNK_RE = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@", re.M)
FAILED_RE = re.compile(r"error: patch failed: (.+):(\d+)")


SERIES_FLAGS = ("baseline",)


@dataclass(frozen=True)
class Patch:
    path: Path
    flags: tuple[str, ...] = ()
    """Words after the name in `series`: "baseline" also applies the patch to baseline variants."""

    @property
    def name(self) -> str:
        return self.path.name

    def text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PatchError(f"cannot read patch {self.path}: {exc}", "restore it from git") from exc

    def files(self) -> list[str]:
        """Paths the patch touches (both sides of renames)."""
        return sorted({p for pair in FILE_RE.findall(self.text()) for p in pair})

    def subject(self) -> str:
        m = re.search(r"^Subject: (?:\[PATCH[^\]]*\] )?(.+)$", self.text(), re.M)
        return m.group(1) if m else ""


def read_series(patches_dir: Path = PATCHES_DIR) -> list[Patch]:
    """The patches named in `series`, in order; stops on missing, unreadable or repeated entries."""
    series = patches_dir / "series"
    if not series.is_file():
        raise PatchError(f"{series} does not exist", "create it (one patch file name per line; it may be empty)")
    patches: list[Patch] = []
    for lineno, line in enumerate(series.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        name, flags = words[0], tuple(words[1:])
        if any(p.name == name for p in patches):
            raise PatchError(f"{series}:{lineno}: {name} is listed twice", "remove the repeated line")
        if not (patches_dir / name).is_file():
            raise PatchError(f"{series}:{lineno}: {name} does not exist in {patches_dir}", "restore the file or remove the line")
        for flag in flags:
            if flag not in SERIES_FLAGS:
                raise PatchError(f"{series}:{lineno}: unknown flag {flag!r}", f"flags: {', '.join(SERIES_FLAGS)}")
        patches.append(Patch(patches_dir / name, flags))
    for patch in patches:
        patch.text()
    return patches


def unused_patch_files(patches_dir: Path, series: list[Patch]) -> list[str]:
    listed = {p.name for p in series}
    return sorted(p.name for p in patches_dir.glob("*.patch") if p.name not in listed)


def _git(args: list[str], tree: Path, **kwargs) -> str:
    # the ceiling keeps git from using a repository that happens to enclose the tree
    env = {"GIT_CEILING_DIRECTORIES": str(tree.parent)}
    return run(["git", *args], cwd=tree, env=env, **kwargs)


def _describe_failure(patch: Patch, output: str) -> str:
    """Which file and hunk of `patch` did not apply, from git apply's output."""
    m = FAILED_RE.search(output)
    if not m:
        return output.strip().splitlines()[-1] if output.strip() else "unknown reason"
    path, line = m.group(1), int(m.group(2))
    text = patch.text()
    start = text.find(f"diff --git a/{path} ")
    section = text[start:]
    nxt = section.find("\ndiff --git ", 1)
    section = section if nxt < 0 else section[:nxt]
    for number, hm in enumerate(HUNK_RE.finditer(section), 1):
        if int(hm.group(1)) == line:
            return f"{path}: hunk #{number} ({hm.group(0)}) does not apply"
    return f"{path}: the hunk at line {line} does not apply"


def apply_patch(tree: Path, patch: Patch, *, reverse: bool = False, log_file: Path | None = None) -> str | None:
    """Apply one patch (after a dry run); None on success, else what failed."""
    args = ["apply", "--whitespace=nowarn"] + (["-R"] if reverse else [])
    try:
        _git([*args, "--check", str(patch.path)], tree, log_file=log_file)
    except CommandError as exc:
        try:
            _git([*args, "-R", "--check", str(patch.path)], tree, log_file=log_file)
        except CommandError:
            return _describe_failure(patch, exc.message)
        return "it is already applied"
    _git([*args, str(patch.path)], tree, log_file=log_file)
    return None


def apply_series(tree: Path, series: list[Patch], log_file: Path | None = None) -> None:
    """Apply every patch or none: on a failure the ones applied so far are undone."""
    applied: list[Patch] = []
    for i, patch in enumerate(series, 1):
        log.info(f"  applying {patch.name} ({i}/{len(series)})")
        failure = apply_patch(tree, patch, log_file=log_file)
        if failure:
            for done in reversed(applied):
                apply_patch(tree, done, reverse=True, log_file=log_file)
            raise PatchError(
                f"patch {patch.name} does not apply to {tree}: {failure}",
                "run `python -m builder patches check` for every patch's status, "
                "or `python -m builder patches dev DIR` to rebase it",
            )
        applied.append(patch)


def copy_touched_files(pristine: Path, series: list[Patch], dest: Path) -> list[str]:
    """Copy into `dest` the files of `pristine` that the series touches; returns their paths."""
    touched = sorted({f for p in series for f in p.files()})
    dest.mkdir(parents=True, exist_ok=True)
    for rel in touched:
        if (pristine / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(pristine / rel, dest / rel)
    return touched


def check_series(pristine: Path, series: list[Patch]) -> list[dict]:
    """Apply the series, in order, to a scratch copy of the files it touches; one status per patch."""
    results = []
    with tempfile.TemporaryDirectory(prefix="experts-first-check-") as tmp:
        scratch = Path(tmp) / "tree"
        copy_touched_files(pristine, series, scratch)
        failed = False
        for patch in series:
            status = {"patch": patch.name, "subject": patch.subject()}
            if failed:
                status.update(status="skipped", detail="an earlier patch failed")
            else:
                failure = apply_patch(scratch, patch)
                failed = failure is not None
                status.update(status="conflicts" if failed else "applies", detail=failure or "")
            status["trailing_whitespace"] = _added_trailing_whitespace(patch)
            results.append(status)
    return results


def _added_trailing_whitespace(patch: Patch) -> int:
    text = patch.text()
    body = text[text.find("\ndiff --git ") :]
    return sum(1 for line in body.splitlines() if line.startswith("+") and not line.startswith("+++") and line != line.rstrip())


def make_dev_tree(pristine: Path, dest: Path, series: list[Patch], tag: str) -> None:
    """A git work tree of the pinned source, one commit per patch, the base tagged `upstream`."""
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} exists and is not empty", "pick a new folder, or delete it first")
    shutil.copytree(pristine, dest, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".experts-first-source.json"))
    _git(["init", "-q"], dest)
    _git(["add", "-A", "-f"], dest)
    base_env = {"GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}
    run(["git", *DEV_IDENTITY, "commit", "-q", "-m", f"upstream llama.cpp {tag}"], cwd=dest, env={**base_env, "GIT_CEILING_DIRECTORIES": str(dest.parent)})
    _git(["tag", UPSTREAM_TAG], dest)
    for i, patch in enumerate(series, 1):
        log.info(f"  committing {patch.name} ({i}/{len(series)})")
        try:
            _git([*DEV_IDENTITY, "am", "-q", "--committer-date-is-author-date", str(patch.path)], dest)
        except CommandError as exc:
            raise PatchError(
                f"patch {patch.name} does not apply in {dest}: {exc.message}",
                "fix it there (git am --show-current-patch; edit; git am --continue), then export",
            ) from exc


def _normalise(text: str) -> str:
    """Drop `index` lines (they name blobs, not code) so regenerated patches only change with the code."""
    head, sep, body = text.partition("\ndiff --git ")
    body = "\n".join(line for line in body.split("\n") if not re.match(r"index [0-9a-f]+\.\.[0-9a-f]+", line))
    return head + sep + body.rstrip("\n") + "\n"


def export_series(dev: Path, patches_dir: Path) -> list[str]:
    """Turn the dev tree's commits after `upstream` into patch files and `series`."""
    try:
        _git(["rev-parse", "--verify", "-q", UPSTREAM_TAG], dev)
    except CommandError as exc:
        raise UsageError(f"{dev} is not a dev tree (no tag {UPSTREAM_TAG!r})", "create one with `patches dev DIR`") from exc
    if _git(["status", "--porcelain", "--untracked-files=no"], dev).strip():
        raise UsageError(f"{dev} has uncommitted changes", "commit them (one commit per patch) or stash them")
    with tempfile.TemporaryDirectory(prefix="experts-first-export-") as tmp:
        _git(["format-patch", "-q", "-N", "--zero-commit", "--no-signature", "-o", tmp, f"{UPSTREAM_TAG}..HEAD"], dev)
        produced = {p.name: _normalise(p.read_text(encoding="utf-8")) for p in sorted(Path(tmp).glob("*.patch"))}
    old = read_series(patches_dir) if (patches_dir / "series").exists() else []
    flags = {p.subject(): p.flags for p in old}  # a patch keeps its flags while its subject stays
    # everything is read before anything is replaced
    for patch in old:
        patch.path.unlink()
    lines = []
    for name, text in produced.items():
        patch = Patch(patches_dir / name)
        patch.path.write_text(text, encoding="utf-8")
        lines.append(" ".join((name, *flags.get(patch.subject(), ()))))
    (patches_dir / "series").write_text(SERIES_HEADER + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return [line.split()[0] for line in lines]


def populate_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="apply the series to a scratch copy of the pinned tree and report each patch")
    check.add_argument("--json", action="store_true", help="print the per-patch status as JSON")
    dev = sub.add_parser("dev", help="make DIR a git work tree of the pinned tree with one commit per patch")
    dev.add_argument("dir", type=Path)
    export = sub.add_parser("export", help="write DIR's commits after the `upstream` tag back to patches/ and series")
    export.add_argument("dir", type=Path)
    for p in (check, dev, export):
        p.add_argument("--patches-dir", type=Path, default=PATCHES_DIR, help="the series folder (default: %(default)s)")
        if p is not export:
            add_source_arguments(p)


def main_patches(args: argparse.Namespace) -> int:
    if args.action == "export":
        names = export_series(args.dir.resolve(), args.patches_dir)
        log.info(f"exported {len(names)} patches to {args.patches_dir}")
        return 0
    series = read_series(args.patches_dir)
    tree = ensure_source(settings_from_args(args))
    if args.action == "dev":
        make_dev_tree(tree.path, args.dir.resolve(), series, tree.pin.tag)
        log.info(f"dev tree ready: {args.dir} ({len(series)} patches on tag {UPSTREAM_TAG!r})")
        return 0
    results = check_series(tree.path, series)
    baseline = [p for p in series if "baseline" in p.flags]
    baseline_results = check_series(tree.path, baseline) if baseline else []
    unused = unused_patch_files(args.patches_dir, series)
    if args.json:
        print(json.dumps({"patches": results, "baseline": baseline_results, "unused": unused}, indent=2))
    else:
        for title, rows in (("fork", results), ("baseline (upstream + baseline patches)", baseline_results)):
            if rows:
                print(f"{title}:")
            for r in rows:
                detail = f": {r['detail']}" if r["detail"] else ""
                ws = f" ({r['trailing_whitespace']} added lines end in whitespace)" if r["trailing_whitespace"] else ""
                print(f"  {r['status']:>9}  {r['patch']}{detail}{ws}")
        for name in unused:
            print(f"     unused  {name} (not in series)")
        if not results:
            print("the series is empty")
    return 0 if all(r["status"] == "applies" for r in results + baseline_results) else PatchError.exit_code
