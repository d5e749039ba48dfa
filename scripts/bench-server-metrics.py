#!/usr/bin/env python3
"""What does counting the hot experts' selections for /metrics cost? llama-server's decode speed with a static hot set,
with and without --metrics (patch 0014: --metrics reads the selected experts back after each ubatch), alternating.

    scripts/bench-server-metrics.py --server dist/cuda-sm90/bin/llama-server --model M.gguf \\
        --server-args="-ngl 99 --cpu-moe -lm none -fit off -t 8 --moe-hot-mib 3900 --moe-cold gpu" --rounds 3

Each round starts the server without and then with --metrics (builder.llama_server: a free loopback port, stopped by
its PID; its logs in a new folder under the temp dir), sends --requests completions of --tokens tokens (temperature 0,
ignore_eos, cache_prompt off) one at a time and takes the median of their `timings.predicted_per_second`, the first
request left out (warm-up). Prints one JSON object: per
setting the rounds' medians, and the ratio of the medians (with / without). The last scrape of the --metrics server
is printed too (its llamacpp:moe_ lines).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.errors import BuilderError, report  # noqa: E402
from builder.llama_server import Server  # noqa: E402

PROMPT = "The ferry left the harbour at dawn, and the gulls followed it past the lighthouse and the long grey pier."


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as r:
        return json.load(r)


def measure(settings: argparse.Namespace, extra: list[str], log: Path) -> tuple[float, str]:
    args = ["-np", "1", "-c", "1024", *shlex.split(settings.server_args), *extra]
    with Server(settings.server, settings.model, args, log, load_seconds=600) as server:
        speeds = []
        for _ in range(settings.requests):
            r = post(server.url + "/completion", {"prompt": PROMPT, "n_predict": settings.tokens, "temperature": 0,
                                                  "ignore_eos": True, "cache_prompt": False})
            speeds.append(r["timings"]["predicted_per_second"])
        scrape = ""
        if "--metrics" in extra:
            with urllib.request.urlopen(server.url + "/metrics", timeout=60) as r:
                scrape = "\n".join(line for line in r.read().decode().splitlines() if line.startswith("llamacpp:moe_"))
        return statistics.median(speeds[1:]), scrape


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="the llama-server binary")
    parser.add_argument("--model", required=True)
    parser.add_argument("--server-args", default="", help="arguments of both servers (a static hot set)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=128)
    settings = parser.parse_args()

    result = {"settings": vars(settings), "without": [], "with": []}
    scrape = ""
    logs = Path(tempfile.mkdtemp(prefix="bench-server-metrics-"))
    try:
        for _ in range(settings.rounds):
            result["without"].append(measure(settings, [], logs / "without.log")[0])
            speed, scrape = measure(settings, ["--metrics"], logs / "with.log")
            result["with"].append(speed)
    except BuilderError as exc:
        return report(exc)
    result["ratio"] = statistics.median(result["with"]) / statistics.median(result["without"])
    result["scrape"] = scrape
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
