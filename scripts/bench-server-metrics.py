#!/usr/bin/env python3
"""What does counting the hot experts' selections for /metrics cost? llama-server's decode speed with a static hot set,
with and without --metrics (patch 0014: --metrics reads the selected experts back after each ubatch), alternating.

    scripts/bench-server-metrics.py --server dist/cuda-sm90/bin/llama-server --model M.gguf \\
        --server-args="-ngl 99 --cpu-moe -lm none -fit off -t 8 --moe-hot-mib 3900 --moe-cold gpu" --rounds 3

Each round starts the server without and then with --metrics on a free loopback port (stopped by its PID), sends
--requests completions of --tokens tokens (temperature 0, ignore_eos, cache_prompt off) one at a time and takes the
median of their `timings.predicted_per_second`, the first request left out (warm-up). Prints one JSON object: per
setting the rounds' medians, and the ratio of the medians (with / without). The last scrape of the --metrics server
is printed too (its llamacpp:moe_ lines).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import socket
import statistics
import subprocess
import time
import urllib.request

PROMPT = "The ferry left the harbour at dawn, and the gulls followed it past the lighthouse and the long grey pier."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as r:
        return json.load(r)


def measure(settings: argparse.Namespace, extra: list[str]) -> tuple[float, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [settings.server, "-m", settings.model, "--host", "127.0.0.1", "--port", str(port), "-np", "1", "-c", "1024",
               *shlex.split(settings.server_args), *extra]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"llama-server did not start: {shlex.join(command)}")
                time.sleep(1)
        speeds = []
        for _ in range(settings.requests):
            r = post(url + "/completion", {"prompt": PROMPT, "n_predict": settings.tokens, "temperature": 0,
                                           "ignore_eos": True, "cache_prompt": False})
            speeds.append(r["timings"]["predicted_per_second"])
        scrape = ""
        if "--metrics" in extra:
            with urllib.request.urlopen(url + "/metrics", timeout=60) as r:
                scrape = "\n".join(line for line in r.read().decode().splitlines() if line.startswith("llamacpp:moe_"))
        return statistics.median(speeds[1:]), scrape
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
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
    for _ in range(settings.rounds):
        result["without"].append(measure(settings, [])[0])
        speed, scrape = measure(settings, ["--metrics"])
        result["with"].append(speed)
    result["ratio"] = statistics.median(result["with"]) / statistics.median(result["without"])
    result["scrape"] = scrape
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
