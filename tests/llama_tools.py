"""Running the built llama.cpp tools of the `cpu` variant in tests: perplexity on a short text of our own; and
importing the scripts/ files."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

# our own sentences, repeated: enough tokens for two chunks of 64
STORY = " ".join([
    "The ferry left the harbour at dawn, and the gulls followed it past the lighthouse and the long grey pier.",
    "On deck a boy counted the buoys aloud while his grandmother read the weather from the colour of the sea.",
    "By noon the island rose out of the haze, green at the top and white where the waves broke on the rocks.",
] * 6)


def perplexity(dist: Path, model: Path, text: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """llama-perplexity of the `cpu` build over two chunks of 64 tokens, with libllama's info lines (-lv 4), `env` added to
    the environment. -nr: hot expert copies are cut from plain host tensors, not from the CPU's repacked layouts."""
    command = [dist / "cpu" / "bin" / "llama-perplexity", "-m", model, "-f", text, "-c", "64", "--chunks", "2",
               "-t", "2", "-nr", "-lv", "4", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def final_ppl(proc: subprocess.CompletedProcess) -> str:
    """The "Final estimate" PPL as printed: equal strings mean equal results to every printed digit."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    return re.search(r"Final estimate: PPL = ([\d.]+)", output).group(1)


def hot_sets_printed(text: str) -> dict[int, list[int]]:
    """By layer: the hot experts in the "layer N: hot experts: ..." lines the fork prints with -v."""
    return {int(layer): [int(e) for e in experts.split()] for layer, experts in re.findall(r"layer (\d+): hot experts:([\d ]+)", text)}


def hot_range(n_hot: dict[int, int]) -> str:
    """How the tools' info line gives the hot experts a layer keeps: "4", or "3-6" where the layers differ."""
    low, high = min(n_hot.values()), max(n_hot.values())
    return str(low) if low == high else f"{low}-{high}"


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py as a module (its name has dashes, so no import statement reaches it)."""
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
