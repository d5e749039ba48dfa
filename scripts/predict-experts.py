#!/usr/bin/env python3
"""How well can a layer's cold experts be known before its router runs? The question a prefetch of experts on a
second stream stands on (issue 10: the misses' bus time hidden behind compute), measured on the trained model of
scripts/train-moe.py in PyTorch.

    python3 scripts/predict-experts.py --model /tmp/learned --out DIR [--text prose] [--profile poems]
        [--budgets 25,50,75] [--slots 1,2,4,8] [--chunks N]
    python3 scripts/predict-experts.py --traces REPLAY.moetrace PROFILE.moetrace --out DIR [--budgets ...] [--slots ...]

The second form needs no PyTorch and takes any model's routing (llama.cpp's --moe-trace-out, e.g. of Qwen3-30B-A3B
on two texts): it measures the `co-occurrence` predictor only.

The hot set of each budget is the static one --moe-hot-profile picks from the routing of the profile text (the
held-out text of the other genre). For every token and layer of the replayed text's chunks (llama-perplexity's
chunks of the model's context), each predictor ranks the layer's cold experts; with m prefetch slots a layer
fetches its m best-ranked cold experts ahead, and a cold selection among them no longer waits on the bus.
Predictors:

- `before-attention`: the layer's own router (its post-attention norm and gate) on the layer's input, the residual
  stream before attention. Known one attention block before the router.
- `layer-ahead`: the layer's router on the previous layer's post-attention residual (no prediction for layer 0).
  Known one MoE block and one attention block before the router.
- `layer-ahead-moe-input`: the same, but the residual normed by the previous layer's own norm, i.e. the previous
  layer's MoE input: what the graph has at hand where it builds that layer's experts (build_moe_ffn), so the cheapest
  predictor to compute in llama.cpp.
- `co-occurrence`: the previous layer's selected experts, scored by how often each expert followed them in the
  profile text (no prediction for layer 0). Needs no activations: the ids alone.
- `more-hot`: no prediction; the static hot set m experts larger (the same VRAM as m slots). A prefetch is only
  worth its slots where it covers more than this.

Writes DIR/predict-experts.json (every number) and DIR/predict-experts.md; with --model also the routing of both
texts (DIR/routing-TEXT.moetrace, DIR/routing-PROFILE.moetrace) and each activation predictor's --rank best experts
per token and layer, best first (DIR/before-attention-TEXT.moetrace, DIR/layer-ahead-TEXT.moetrace), for a prefetch
to replay on the bench model beside the routing (scripts/make-bench-traces.py --predictions). Coverage is of the cold selections
(the misses a bus read serves today); the top-k recall (the share of a token's k selected experts among the
predictor's first k, hot or cold) is the figure the literature reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder import hot_experts  # noqa: E402
from builder.errors import BuilderError, UsageError, report  # noqa: E402
from builder.moe_trace import Trace, read_routed, read_trace, selection_counts, write_trace  # noqa: E402
from builder.trace_stats import check_same_shape  # noqa: E402

# ---------------------------------------------------------------------------- the measures (numpy only)


def hot_mask(counts: np.ndarray, n_hot: int) -> np.ndarray:
    """[layers, experts] bool: the n_hot experts per layer --moe-hot-profile picks from the selection counts
    [layers, experts]."""
    hot = np.zeros(counts.shape, dtype=bool)
    for layer, experts in hot_experts.hot_sets(counts, {layer: n_hot for layer in range(len(counts))}).items():
        hot[layer, experts] = True
    return hot


def is_hot(hot: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """hot [layers, experts] looked up for each selection of ids [tokens, layers, used], same shape as ids."""
    return hot[np.arange(ids.shape[1])[None, :, None], ids]


def cold_coverage(ids: np.ndarray, scores: np.ndarray, hot: np.ndarray, slots: int) -> tuple[int, int]:
    """(cold selections among the `slots` best-scored cold experts of their token and layer, cold selections) for
    ids [tokens, layers, used] and scores [tokens, layers, experts] (NaN rows: no prediction there, nothing
    covered); ties go to the lower id."""
    cold = ~is_hot(hot, ids)
    masked = np.where(hot[None], -np.inf, np.nan_to_num(scores, nan=-np.inf))
    order = np.argsort(-masked, axis=2, kind="stable")[:, :, :slots]
    fetched = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(fetched, order, True, axis=2)
    fetched &= ~np.isnan(scores).any(axis=2, keepdims=True) & ~hot[None]
    covered = np.take_along_axis(fetched, ids.astype(np.int64), axis=2) & cold
    return int(covered.sum()), int(cold.sum())


def topk_recall(ids: np.ndarray, scores: np.ndarray) -> float | None:
    """The share of the selections ids [tokens, layers, k] among the k best of scores [tokens, layers, experts],
    over the token-layers that have a prediction; None where none has."""
    k = ids.shape[2]
    valid = ~np.isnan(scores).any(axis=2)
    if not valid.any():
        return None
    best = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=2, kind="stable")[:, :, :k]
    hits = (best[:, :, :, None] == ids[:, :, None, :]).any(axis=3).sum(axis=2)
    return float(hits[valid].sum() / (valid.sum() * k))


def cooccurrence_scores(profile_ids: np.ndarray, ids: np.ndarray, n_expert: int) -> np.ndarray:
    """[tokens, layers, experts]: for layer l > 0, how often each expert of layer l followed the token's layer l-1
    selections in profile_ids (summed over them); NaN for layer 0."""
    n_tokens, n_layer, _ = ids.shape
    scores = np.full((n_tokens, n_layer, n_expert), np.nan)
    for layer in range(1, n_layer):
        follows = np.zeros((n_expert, n_expert))
        prev, cur = profile_ids[:, layer - 1], profile_ids[:, layer]
        np.add.at(follows, (np.repeat(prev, cur.shape[1], axis=1), np.tile(cur, prev.shape[1])), 1)
        scores[:, layer] = follows[ids[:, layer - 1].astype(np.int64)].sum(axis=1)
    return scores


def measure(ids: np.ndarray, predictions: dict[str, np.ndarray], profile_ids: np.ndarray, n_expert: int,
            budgets: list[int], slots: list[int]) -> dict:
    """Every number of the report: per budget, the static hot set's hit rate and, per slot count, each
    predictor's coverage of the cold selections and the larger hot set's; the predictors' top-k recall."""
    rows = []
    counts = selection_counts(Trace(profile_ids.shape[1], n_expert, profile_ids.shape[2], profile_ids))
    for pct in budgets:
        n_hot = n_expert * pct // 100
        hot = hot_mask(counts, n_hot)
        cold_total = int((~is_hot(hot, ids)).sum())
        row = {"budget_pct": pct, "hot_per_layer": n_hot, "hit_rate": 1 - cold_total / ids.size,
               "cold_per_token": cold_total / len(ids), "slots": {}}
        for m in slots:
            covered = {name: cold_coverage(ids, scores, hot, m)[0] for name, scores in predictions.items()}
            covered["more-hot"] = cold_total - int((~is_hot(hot_mask(counts, min(n_expert, n_hot + m)), ids)).sum())
            row["slots"][str(m)] = {name: (c / cold_total if cold_total else None) for name, c in covered.items()}
        rows.append(row)
    return {"tokens": len(ids), "layers": int(ids.shape[1]), "experts": n_expert, "used": int(ids.shape[2]),
            "topk_recall": {name: topk_recall(ids, scores) for name, scores in predictions.items()}, "budgets": rows}


def ranking_trace(scores: np.ndarray, k: int) -> Trace:
    """A predictor's scores [tokens, layers, experts] as a trace of its k best experts per token and layer, best first
    (ties to the lower id), for a prefetch to replay; -1 where it has no prediction (NaN rows)."""
    best = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=2, kind="stable")[:, :, :k].astype(np.int16)
    best[np.isnan(scores).any(axis=2)] = -1
    return Trace(scores.shape[1], scores.shape[2], k, best)


def write_replay_traces(out: Path, text: str, profile: str, ids: np.ndarray, profile_ids: np.ndarray,
                        predictions: dict[str, np.ndarray], k: int) -> None:
    """The routing the numbers were measured on and each activation predictor's ranking of the same tokens, as traces
    for the placement benchmark (scripts/make-bench-traces.py --predictions): OUT/routing-TEXT.moetrace,
    OUT/routing-PROFILE.moetrace, OUT/PREDICTOR-TEXT.moetrace."""
    n_expert = next(iter(predictions.values())).shape[2]
    for genre, routing in ((text, ids), (profile, profile_ids)):
        write_trace(Trace(routing.shape[1], n_expert, routing.shape[2], routing), out / f"routing-{genre}.moetrace")
    for name, scores in predictions.items():
        write_trace(ranking_trace(scores, k), out / f"{name}-{text}.moetrace")


def router_check(ids: np.ndarray, trace_path: Path) -> float | None:
    """The share of token-layers whose selected set in ids equals the one train-moe.py recorded from the model in
    memory (trace_path, over the same chunks), i.e. whether the checkpoint reloaded here routes as the model the
    GGUFs were converted from. None without that trace."""
    if not trace_path.is_file():
        return None
    recorded = read_trace(trace_path).ids[: len(ids)]
    if recorded.shape != ids.shape:
        raise UsageError(f"{trace_path}: routing of shape {recorded.shape}, this run's is {ids.shape}",
                         "give --chunks no larger than train-moe.py's")
    return float((np.sort(recorded, axis=2) == np.sort(ids, axis=2)).all(axis=2).mean())


def render_markdown(result: dict) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f} %"

    names = [*result["topk_recall"], "more-hot"]
    source = (f"model {result['model']}; the checkpoint's routing here equals the one train-moe.py recorded while "
              f"training (torch-{result['text']}.moetrace) on {pct(result['router_check'])} of the token-layers"
              if "model" in result else "recorded routing only")
    lines = [f"# Predicting the cold experts: {result['text']} replayed, hot sets from {result['profile']}", "",
             f"{result['tokens']} tokens, {result['layers']} routed layers, {result['experts']} experts, {result['used']} used; "
             f"{source}.", "",
             "Share of the cold selections a prefetch of m experts per layer would have fetched ahead "
             "(`more-hot`: the static set m experts larger instead).", "",
             "| budget | hit rate | cold / token | m | " + " | ".join(names) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    for row in result["budgets"]:
        for m, cover in row["slots"].items():
            lines.append(f"| {row['budget_pct']} % ({row['hot_per_layer']} hot) | {pct(row['hit_rate'])} | "
                         f"{row['cold_per_token']:.2f} | {m} | " + " | ".join(pct(cover[n]) for n in names) + " |")
    lines += ["", "Top-k recall (the share of a token's selected experts among the predictor's first k, layers with a "
              "prediction): " + ", ".join(f"{n} {pct(v)}" for n, v in result["topk_recall"].items()) + ".", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the model (PyTorch)


def load_checkpoint(model_dir: Path, device: str):
    """train-moe.py's checkpoint model_dir/hf on `device` (fp32, eval) and its tokenizer; a model other than
    Qwen3-MoE is refused."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir / "hf", dtype=torch.float32).to(device).eval()
    if model.config.model_type != "qwen3_moe":
        raise UsageError(f"{model_dir / 'hf'} is a {model.config.model_type} checkpoint; --model reads train-moe.py's Qwen3-MoE only",
                         "record the other model's routing with llama.cpp's --moe-trace-out on two texts and pass --traces")
    return model, Tokenizer.from_file(str(model_dir / "hf" / "tokenizer.json"))


def routes(model, tokenizer, text: str, ctx: int, chunks: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run the model over the first `chunks` windows of `ctx` tokens of `text`; return the router's top-k ids
    [tokens, layers, k] and the scores of the activation predictors [tokens, layers, experts]."""
    import torch

    tokens = np.array(tokenizer.encode(text).ids, dtype=np.int64)
    windows = tokens[: len(tokens) // ctx * ctx].reshape(-1, ctx)[:chunks]
    if not len(windows):
        raise UsageError(f"the text has {len(tokens)} tokens, fewer than one context of {ctx}", "give a longer --text")
    layers = model.model.layers
    captured: dict[tuple[str, int], list] = {}

    def keep(kind: str, index: int):
        return lambda _module, args: captured.setdefault((kind, index), []).append(args[0][0].detach())

    hooks = [m.register_forward_pre_hook(keep(kind, i)) for i, layer in enumerate(layers)
             for kind, m in (("input", layer.input_layernorm), ("post_attention", layer.post_attention_layernorm))]
    with torch.no_grad():
        for window in windows:
            model(input_ids=torch.from_numpy(window[None]).to(model.device))
        for hook in hooks:
            hook.remove()

        def router(index: int, kind: str, at: int, norm: int | None = None) -> np.ndarray:
            """Layer index's router logits on the residual captured before layer at's `kind` norm, normed by layer norm's
            post-attention norm (default: layer index's own)."""
            x = layers[index if norm is None else norm].post_attention_layernorm(torch.cat(captured[(kind, at)]))
            return torch.nn.functional.linear(x, layers[index].mlp.gate.weight).float().cpu().numpy()

        actual = np.stack([router(i, "post_attention", i) for i in range(len(layers))], axis=1)
        before = np.stack([router(i, "input", i) for i in range(len(layers))], axis=1)
        ahead = np.full_like(actual, np.nan)
        ahead_moe_input = np.full_like(actual, np.nan)
        for i in range(1, len(layers)):
            ahead[:, i] = router(i, "post_attention", i - 1)
            ahead_moe_input[:, i] = router(i, "post_attention", i - 1, norm=i - 1)
    ids = np.argsort(-actual, axis=2, kind="stable")[:, :, :model.config.num_experts_per_tok].astype(np.int16)
    return ids, {"before-attention": before, "layer-ahead": ahead, "layer-ahead-moe-input": ahead_moe_input}


def routed_layers(trace_ids: np.ndarray) -> np.ndarray:
    """trace_ids [tokens, layers, used] without its dense layers (no expert in any token)."""
    return trace_ids[:, (trace_ids >= 0).any(axis=(0, 2))]


def from_traces(replay: Path, profile: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """The routed tokens and layers of two recorded traces of one model: (ids, profile ids, experts)."""
    trace, other = read_routed(replay), read_routed(profile)
    check_same_shape(trace, replay, other, profile)
    return routed_layers(trace.ids), routed_layers(other.ids), trace.n_expert


def heldout_text(model_dir: Path, genre: str) -> str:
    """The held-out text as train-moe.py tokenized it and llama-perplexity reads it: its line ends kept (read_text
    would turn the corpus's CRLF into LF, other tokens, other routing)."""
    return (model_dir / f"heldout-{genre}.txt").read_bytes().decode("utf-8")


def import_torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"this script runs the model in PyTorch: {exc}",
                         "run it where scripts/train-moe.py ran (the GPU machine has both), or pip install torch transformers") from None
    return torch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="scripts/train-moe.py's --out (hf/, heldout-*.txt, train-moe.json)")
    source.add_argument("--traces", type=Path, nargs=2, metavar=("REPLAY", "PROFILE"),
                        help="two recorded routing traces of one model instead (co-occurrence only, no PyTorch)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--text", default="prose", help="the held-out genre replayed (default: %(default)s)")
    p.add_argument("--profile", default="poems", help="the held-out genre the hot sets come from (default: %(default)s)")
    p.add_argument("--budgets", default="25,50,75", help="percent of each layer's experts hot")
    p.add_argument("--slots", default="1,2,4,8", help="prefetch slots per layer")
    p.add_argument("--chunks", type=int, help="windows of the model's context from each text (default: train-moe.py's, at most 8)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when there is one, else cpu)")
    p.add_argument("--rank", type=int, default=16, help="experts per token and layer in each predictor's trace (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        args.budget_list = [int(b) for b in args.budgets.split(",")]
        args.slot_list = [int(s) for s in args.slots.split(",")]
    except ValueError:
        raise UsageError(f"--budgets {args.budgets} / --slots {args.slots}: not comma-separated integers",
                         "e.g. --budgets 25,50,75 --slots 1,2,4") from None
    if args.rank < 1:
        raise UsageError(f"--rank {args.rank}: a predictor's trace needs at least one expert per token and layer", "e.g. --rank 16")
    if any(not 0 < b < 100 for b in args.budget_list) or any(s < 1 for s in args.slot_list):
        raise UsageError(f"--budgets {args.budgets} / --slots {args.slots}: budgets are percents in 1..99, slots at least 1",
                         "e.g. --budgets 25,50,75 --slots 1,2,4")
    for name in ("train-moe.json", "hf", f"heldout-{args.text}.txt", f"heldout-{args.profile}.txt") if args.model else ():
        if not (args.model / name).exists():
            raise UsageError(f"{args.model} has no {name}", "pass scripts/train-moe.py's --out as --model")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.traces:
            ids, profile_ids, n_expert = from_traces(*args.traces)
            source, predictions = {"text": str(args.traces[0]), "profile": str(args.traces[1])}, {}
        else:
            trained = json.loads((args.model / "train-moe.json").read_text())["config"]
            args.chunks = min(8, trained["chunks"]) if args.chunks is None else args.chunks
            torch = import_torch()
            model, tokenizer = load_checkpoint(args.model, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            ids, predictions = routes(model, tokenizer, heldout_text(args.model, args.text), trained["ctx"], args.chunks)
            profile_ids, _ = routes(model, tokenizer, heldout_text(args.model, args.profile), trained["ctx"], args.chunks)
            n_expert = predictions["before-attention"].shape[2]
            source = {"model": str(args.model), "text": args.text, "profile": args.profile, "chunks": args.chunks,
                      "router_check": router_check(ids, args.model / f"torch-{args.text}.moetrace")}
    except BuilderError as exc:
        return report(exc)
    args.out.mkdir(parents=True, exist_ok=True)
    if predictions:
        write_replay_traces(args.out, args.text, args.profile, ids, profile_ids, predictions, min(args.rank, n_expert))
    predictions["co-occurrence"] = cooccurrence_scores(profile_ids, ids, n_expert)
    result = {**source, **measure(ids, predictions, profile_ids, n_expert, args.budget_list, args.slot_list)}
    (args.out / "predict-experts.json").write_text(json.dumps(result, indent=2))
    markdown = render_markdown(result)
    (args.out / "predict-experts.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
