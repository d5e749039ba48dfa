"""The llama.cpp tools of this experts-first wheel: where they are, and the manifest of their build.

    >>> import experts_first_llama
    >>> experts_first_llama.tool("server")          # PosixPath('.../experts_first_llama/bin/llama-server')
    >>> experts_first_llama.manifest()["patches"]   # the patch series the tools were built with
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def manifest() -> dict:
    """The build manifest: variant, pin, patches (name, sha256), CMake options, CUDA archs, compilers, wheel."""
    return json.loads((PACKAGE_DIR / "manifest.json").read_text(encoding="utf-8"))


def tools() -> dict[str, Path]:
    """Every tool of the wheel by name: {"llama-cli": Path, "llama-server": Path, ...}."""
    return {name: PACKAGE_DIR / relative for name, relative in manifest()["tools"].items()}


def tool(name: str) -> Path:
    """One tool's executable, by its name ("llama-server") or its short name ("server")."""
    found = tools()
    full = name if name in found else f"llama-{name}"
    if full not in found:
        raise KeyError(f"this wheel has no tool {name!r}; it has {', '.join(found)}")
    return found[full]
