#!/usr/bin/env python3
"""Do llama-server's parallel slots give the serial answers? The fork (hot experts, adaptive hot set)
against the baseline (upstream + the routing patch), on the same model and requests (issue 9, item 5).

    scripts/server-identity.py --model M.gguf --text heldout-poems.txt --fork dist/cuda-sm90/bin \\
        --baseline dist/baseline-cuda-sm90/bin --server-args="-ngl 99 --cpu-moe -lm none -fit off -t 8" \\
        --fork-args="--moe-cold gpu --moe-hot-adapt 8" --hot-share 0.5 --rounds 3 --out DIR

Each server is started twice on free loopback ports, always with `--cache-ram 0 -lv 4` and 512 tokens
of context per slot:
    -np 1   the requests one at a time (the serial answers, the reference), then --rounds times again
            from --parallel clients at once (queued by the server; on the fork the hot set has moved since)
    -np P   the requests --rounds times from P clients at once (P slots decoding in one batch)
Requests: --requests passages of --chars characters cut from --text at evenly spaced line starts, each
`/completion` with n_predict --tokens, temperature 0, a fixed seed, ignore_eos (every answer has the
same length) and cache_prompt off (every prompt is computed in full, so an answer depends only on its
own prompt and on the batch it was decoded in, never on a slot's earlier request).
Answers are compared by token ids. A request that gets no answer within --timeout seconds is a stuck
slot; a server that exits before it is stopped, exits non-zero on SIGTERM or has to be killed is a crash.
The fork's adaptive swaps come from its "llama_moe_hot: adapt:" line, printed when it exits.

Which requests share a batch, and at which step, depends on timing, so the -np P count varies from run
to run; more rounds average it.

The baseline runs --server-args alone, or with --baseline-cache upstream's LRU of experts on the GPU
(--moe-cache-mib) at the fork's hot budget: the same VRAM, and like the fork's it computes the experts on
the GPU, whose kernels give a token other bits in a batch than alone (with --cpu-moe the baseline computes
every expert on the CPU, whose numerics per token do not depend on the batch).

The bar (exit 0, else 1): the fork's -np 1 answers all equal its serial ones, its share of -np P
answers equal to serial is at least the baseline's, and no server crashed or left a slot stuck.
Writes DIR/server-identity.json, DIR/server-identity.md and each server's log.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder import hot_experts  # noqa: E402
from builder.errors import BuilderError, UsageError, report  # noqa: E402
from builder.llama_server import Server  # noqa: E402
from builder.report.parse import ParseError, parse_moe_adapt  # noqa: E402

SLOT_CTX = 512
"""Context per slot: a passage (about 100-200 tokens) and the answer."""
SEED = 42


def passages(text: str, count: int, chars: int) -> list[str]:
    """`count` distinct passages of at most `chars` characters, each from the first line start at or after
    (i + 1/2) / count of the text, cut at its last whitespace."""
    found = []
    for i in range(count):
        start = text.find("\n", int((i + 0.5) * len(text) / count)) + 1
        piece = text[start:start + chars].lstrip()
        found.append(piece[:piece.rfind(" ")] if len(piece) == chars and " " in piece else piece)
    if len(set(found)) < count or not all(p.strip() for p in found):
        raise UsageError(f"the text gives fewer than {count} distinct non-empty passages of {chars} characters",
                         "pass a longer --text, or fewer --requests")
    return found


def server_binary(folder: Path) -> Path:
    binary = folder / "llama-server"
    if not binary.is_file():
        raise UsageError(f"no llama-server in {folder}", "pass the bin folder of a built variant, e.g. dist/cpu/bin "
                         "(python -m builder build --cpu --baseline)")
    return binary


def slot_server(binary: Path, model: Path, n_parallel: int, args: list[str], log: Path) -> Server:
    """llama-server with n_parallel slots of SLOT_CTX tokens, no prompt cache, its log at -lv 4 (the adaptive summary)."""
    return Server(binary, model, ["-np", str(n_parallel), "-c", str(SLOT_CTX * n_parallel), "--cache-ram", "0", "-lv", "4", *args], log)


@dataclass
class Answer:
    status: str
    """"ok", "timeout" (a stuck slot) or "error: ..." (no answer, e.g. the server is gone)."""
    tokens: list[int]
    seconds: float


def complete(url: str, prompt: str, n_tokens: int, timeout: float) -> Answer:
    body = {"prompt": prompt, "n_predict": n_tokens, "temperature": 0, "seed": SEED, "ignore_eos": True,
            "cache_prompt": False, "return_tokens": True}
    request = urllib.request.Request(url + "/completion", json.dumps(body).encode(), {"Content-Type": "application/json"})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            tokens = json.load(r)["tokens"]
        return Answer("ok", tokens, time.monotonic() - start)
    except TimeoutError:
        return Answer("timeout", [], time.monotonic() - start)
    except (OSError, KeyError, ValueError) as exc:  # OSError: also URLError and HTTPError
        status = "timeout" if isinstance(getattr(exc, "reason", None), TimeoutError) else f"error: {exc}"
        return Answer(status, [], time.monotonic() - start)


def ask(url: str, prompts: list[str], clients: int, n_tokens: int, timeout: float) -> list[Answer]:
    """Every prompt's answer, `clients` requests in flight at a time, in prompt order."""
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda p: complete(url, p, n_tokens, timeout), prompts))


def first_difference(a: list[int], b: list[int]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None if len(a) == len(b) else min(len(a), len(b)))


def compared(answers: list[Answer], serial: list[Answer]) -> dict:
    """The answers of one or more rounds of the prompts against the serial ones: how many are identical, and per
    request where they part."""
    rows = [{"prompt": i % len(serial), "status": a.status, "seconds": round(a.seconds, 3),
             "first_difference": first_difference(a.tokens, s.tokens) if a.status == s.status == "ok" else None,
             "identical": a.status == s.status == "ok" and a.tokens == s.tokens}
            for i, (a, s) in enumerate(zip(answers, serial * (len(answers) // len(serial))))]
    return {"identical": sum(r["identical"] for r in rows), "requests": rows}


def adaptive_swaps(log: Path) -> dict | None:
    try:
        return asdict(parse_moe_adapt(log.read_text(errors="replace")))
    except ParseError:
        return None


def measure(name: str, binary: Path, model: Path, args: list[str], prompts: list[str], settings: argparse.Namespace) -> dict:
    """The serial pass and the -np 1 and -np P passes (--rounds each) of one server binary."""
    def ask_all(server: Server, clients: int, rounds: int) -> list[Answer]:
        return ask(server.url, prompts * rounds, clients, settings.tokens, settings.timeout)

    servers, passes = {}, {}
    with slot_server(binary, model, 1, args, settings.out / f"{name}-np1.log") as server:
        servers["np1"] = server
        serial = ask_all(server, 1, 1)
        passes["np1"] = compared(ask_all(server, settings.parallel, settings.rounds), serial)
    key = f"np{settings.parallel}"
    with slot_server(binary, model, settings.parallel, args, settings.out / f"{name}-{key}.log") as server:
        servers[key] = server
        passes[key] = compared(ask_all(server, settings.parallel, settings.rounds), serial)
    statuses = [a.status for a in serial] + [r["status"] for p in passes.values() for r in p["requests"]]
    runs = {key: {"command": shlex.join(s.command), "exit": s.exit, "crashed": s.crashed(), "log": s.log.name,
                  "adapt": adaptive_swaps(s.log), **passes[key]} for key, s in servers.items()}
    return {"bin": str(binary.parent), "args": args, "serial": [{"status": a.status, "tokens": a.tokens} for a in serial],
            "crashes": sum(s.crashed() for s in servers.values()), "stuck": statuses.count("timeout"),
            "errors": sum(s.startswith("error") for s in statuses), "runs": runs}


def checks(fork: dict, baseline: dict, parallel: int) -> dict[str, bool]:
    np_p = f"np{parallel}"
    return {"fork -np 1 identical to serial": fork["runs"]["np1"]["identical"] == len(fork["runs"]["np1"]["requests"]),
            f"fork -np {parallel} no worse than the baseline": fork["runs"][np_p]["identical"] >= baseline["runs"][np_p]["identical"],
            "no crash": fork["crashes"] == baseline["crashes"] == 0,
            "no stuck slot": fork["stuck"] == baseline["stuck"] == 0}


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = ["# llama-server: parallel slots against serial answers", "",
             f"Model `{s['model']}`, {s['requests']} passages of `{s['text']}` ({s['rounds']} rounds), {s['tokens']} tokens each, greedy "
             f"(temperature 0, seed {SEED}, ignore_eos, cache_prompt off). Identical: the same token ids as the same "
             "binary's serial answer (-np 1, one request at a time).", "",
             "| server | -np | identical to serial | server exit | adaptive hot set |", "| --- | --- | --- | --- | --- |"]
    for name, server in result["servers"].items():
        for key, run in server["runs"].items():
            adapt = run["adapt"]
            swaps = f"{adapt['swaps']} swaps in {adapt['updates']} updates, {adapt['hit_rate']:.1f} % hot" if adapt else "-"
            lines.append(f"| {name} | {key[2:]} | {run['identical']} / {len(run['requests'])} | {run['exit']} | {swaps} |")
    lines += ["", "| server | crashes | stuck slots (timeouts) | requests without an answer |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {v['crashes']} | {v['stuck']} | {v['errors']} |" for name, v in result["servers"].items()]
    lines += ["", *(f"- {'pass' if ok else 'FAIL'}: {check}" for check, ok in result["checks"].items()), "", "Commands:", ""]
    lines += [f"    {run['command']}" for server in result["servers"].values() for run in server["runs"].values()]
    return "\n".join(lines) + "\n"


def server_flags(args: argparse.Namespace, hot_mib: int) -> tuple[list[str], list[str]]:
    """The fork's flags (its hot budget and own flags) and the baseline's (with --baseline-cache, upstream's LRU of
    experts on the GPU at the same budget)."""
    common = shlex.split(args.server_args)
    fork = [*common, "--moe-hot-mib", str(hot_mib), *shlex.split(args.fork_args)]
    baseline = [*common, "--moe-cache-mib", str(hot_mib)] if args.baseline_cache else common
    return fork, baseline


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Options that take server flags need the "
                                "--opt=\"...\" form, since their values start with a dash.")
    p.add_argument("--model", type=Path, required=True, help="the GGUF both servers load")
    p.add_argument("--text", type=Path, required=True, help="the text the prompts are cut from (held-out text of the model)")
    p.add_argument("--fork", type=Path, required=True, help="bin folder of the fork, e.g. dist/cuda-sm90/bin")
    p.add_argument("--baseline", type=Path, required=True, help="bin folder of the baseline, e.g. dist/baseline-cuda-sm90/bin")
    p.add_argument("--out", type=Path, required=True, help="folder for the JSON, the Markdown and the server logs")
    p.add_argument("--server-args", default="--cpu-moe", help="flags of both servers (default: --cpu-moe)")
    p.add_argument("--fork-args", default="--moe-hot-adapt 8", help="the fork's own flags (default: --moe-hot-adapt 8)")
    p.add_argument("--baseline-cache", action="store_true",
                   help="the baseline keeps upstream's LRU of experts on the GPU (--moe-cache-mib) with the fork's hot budget, so "
                        "both compute their experts on the GPU; without it the baseline runs --server-args alone")
    p.add_argument("--hot-share", type=float, default=0.5,
                   help="the fork's --moe-hot-mib as a share of the model's expert bytes (default 0.5)")
    p.add_argument("--requests", type=int, default=24)
    p.add_argument("--tokens", type=int, default=64, help="tokens per answer (default 64)")
    p.add_argument("--chars", type=int, default=400, help="characters per prompt (default 400)")
    p.add_argument("--parallel", type=int, default=4, help="slots of the parallel server and clients at once (default 4)")
    p.add_argument("--rounds", type=int, default=1,
                   help="times the -np 1 and -np P servers answer every prompt (batches differ from round to round; default 1)")
    p.add_argument("--timeout", type=float, default=120, help="seconds a request may take before its slot counts as stuck")
    args = p.parse_args(argv)
    for what in ("model", "text"):
        if not getattr(args, what).is_file():
            raise UsageError(f"--{what} {getattr(args, what)}: no such file",
                             "a model from python -m builder make-model or scripts/train-moe.py" if what == "model"
                             else "a text file, e.g. the heldout-prose.txt scripts/train-moe.py writes")
    if args.parallel < 2 or args.rounds < 1 or not 0 < args.hot_share <= 1:
        raise UsageError("--parallel must be at least 2, --rounds at least 1 and --hot-share in (0, 1]",
                         "e.g. --parallel 4 --rounds 3 --hot-share 0.5")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        fork, baseline = server_binary(args.fork), server_binary(args.baseline)
        hot_mib = hot_experts.budget_mib(hot_experts.read_layout(args.model), args.hot_share)
        fork_args, baseline_args = server_flags(args, hot_mib)
        prompts = passages(args.text.read_text(encoding="utf-8", errors="replace"), args.requests, args.chars)
        args.out.mkdir(parents=True, exist_ok=True)
        servers = {"fork": measure("fork", fork, args.model, fork_args, prompts, args),
                   "baseline": measure("baseline", baseline, args.model, baseline_args, prompts, args)}
    except BuilderError as exc:
        return report(exc)
    result = {"settings": {"model": str(args.model), "text": str(args.text), "requests": args.requests, "rounds": args.rounds, "tokens": args.tokens,
                           "parallel": args.parallel, "seed": SEED, "slot_ctx": SLOT_CTX, "hot_mib": hot_mib,
                           "baseline_cache": args.baseline_cache,
                           "timeout_s": args.timeout},
              "prompts": prompts, "servers": servers,
              "checks": checks(servers["fork"], servers["baseline"], args.parallel)}
    result["pass"] = all(result["checks"].values())
    (args.out / "server-identity.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "server-identity.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
