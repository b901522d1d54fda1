#!/usr/bin/env python3
"""Check that a model directory loads in Hugging Face transformers, and
optionally that `moeflux score` agrees with it.

Usage:

    python scripts/check_hf_loads.py MODEL_DIR [--tokens 1,2,3] \
        [--moeflux build/moeflux] [--tol 2e-2] [--top-k 5]

It loads MODEL_DIR with `transformers.AutoModelForCausalLM.from_pretrained`
(float32 weights and arithmetic, eager attention), prints the architecture and
the parameter count, and runs one forward pass over the tokens.

With --moeflux PATH it also runs

    PATH score MODEL_DIR --tokens 1,2,3 --json

which prints
    {"tokens": [...], "positions": [{"pos": i, "next_token": id, "logprob": x,
                                     "top": [{"token": id, "logprob": x}, ...]}, ...]}
where position i scores token i+1 given tokens 0..i and "top" lists the top-k
next tokens by log-probability. Every log-probability it reports (the next
token's and every "top" entry's) is compared with transformers'
log_softmax(logits[i]); the script prints the maximum absolute difference and
exits 1 when it exceeds --tol (default 2e-2, for the bf16 models that
`moeflux synth` writes). It also checks that the tokens echo back, that
next_token is tokens[i+1], and reports how often moeflux's best token is
transformers' argmax.

Exit status: 0 ok, 1 mismatch above --tol (or malformed moeflux output),
2 moeflux failed to run.

Requirements: scripts/requirements-oracle.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM


def parse_tokens(s: str) -> list[int]:
    try:
        return [int(t) for t in s.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tokens wants comma-separated integers, got {s!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description="Load a model dir in transformers; optionally compare with moeflux score.")
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", type=parse_tokens, default=None,
                    help="comma-separated token ids (default: 1..16, reduced modulo the vocabulary)")
    ap.add_argument("--moeflux", metavar="PATH", help="moeflux binary; runs `PATH score MODEL_DIR --tokens ... --json`")
    ap.add_argument("--tol", type=float, default=2e-2, help="max abs log-prob difference (default 2e-2)")
    ap.add_argument("--top-k", type=int, default=5, help="how many top tokens to print per position (default 5)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for moeflux (default 600)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                    help="what transformers loads and computes in (default float32; bfloat16 halves the memory of "
                         "large cuts such as deepseek-v3 --layers 4, at bf16's rounding: raise --tol)")
    args = ap.parse_args()

    transformers.logging.set_verbosity_error()
    torch.set_grad_enabled(False)

    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype, attn_implementation="eager")
    model.eval()
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    try:
        with open(os.path.join(args.model_dir, "config.json")) as f:
            raw = json.load(f)
        stored = raw.get("dtype") or raw.get("torch_dtype") or "unset"
    except (OSError, json.JSONDecodeError):
        stored = "?"
    print(f"model_dir:     {args.model_dir}")
    print(f"architecture:  {', '.join(cfg.architectures or [])} (model_type {cfg.model_type}, class {type(model).__name__})")
    print(f"parameters:    {n_params:,} (config dtype {stored}; loaded as {args.dtype})")
    print(f"shape:         hidden {cfg.hidden_size}, layers {cfg.num_hidden_layers}, vocab {cfg.vocab_size}")

    vocab = cfg.vocab_size
    tokens = args.tokens if args.tokens is not None else [t % vocab for t in range(1, 17)]
    if not tokens:
        print("error: no tokens", file=sys.stderr)
        return 1
    bad = [t for t in tokens if not 0 <= t < vocab]
    if bad:
        print(f"error: token ids out of range [0, {vocab}): {bad}", file=sys.stderr)
        return 1

    out = model(input_ids=torch.tensor([tokens]), use_cache=False)
    logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)  # [T, vocab]
    if not torch.isfinite(logprobs).all():
        print("error: transformers produced non-finite logits", file=sys.stderr)
        return 1
    print(f"tokens ({len(tokens)}): {','.join(map(str, tokens))}")
    k = min(args.top_k, vocab)
    for i in range(len(tokens)):
        top = torch.topk(logprobs[i], k)
        nxt = f"next {tokens[i + 1]} logprob {logprobs[i, tokens[i + 1]].item():9.4f}" if i + 1 < len(tokens) else "next -"
        tops = " ".join(f"{t}:{v:.3f}" for v, t in zip(top.values.tolist(), top.indices.tolist()))
        print(f"  pos {i:3d}  {nxt:30s}  top {tops}")

    if not args.moeflux:
        return 0

    cmd = [args.moeflux, "score", args.model_dir, "--tokens", ",".join(map(str, tokens)), "--json"]
    print("running:", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"error: could not run moeflux: {e}", file=sys.stderr)
        return 2
    if proc.returncode != 0:
        print(f"error: moeflux exited {proc.returncode}\n{proc.stderr}", file=sys.stderr)
        return 2
    try:
        res = json.loads(proc.stdout)
        positions = res["positions"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        print(f"error: moeflux output is not the expected JSON ({e}):\n{proc.stdout[:2000]}", file=sys.stderr)
        return 1

    problems = []
    if res.get("tokens") is not None and list(res["tokens"]) != tokens:
        problems.append(f"tokens echoed back differ: {res['tokens']}")
    max_diff, worst, n_cmp, argmax_agree, n_pos = 0.0, None, 0, 0, 0
    for p in positions:
        i = int(p["pos"])
        if not 0 <= i < len(tokens):
            problems.append(f"position {i} out of range")
            continue
        pairs = []
        if "next_token" in p and p["next_token"] is not None and i + 1 < len(tokens):
            if int(p["next_token"]) != tokens[i + 1]:
                problems.append(f"pos {i}: next_token {p['next_token']} != tokens[{i + 1}] = {tokens[i + 1]}")
            pairs.append((int(p["next_token"]), float(p["logprob"]), "next"))
        top = p.get("top") or []
        for e in top:
            pairs.append((int(e["token"]), float(e["logprob"]), "top"))
        if top:
            n_pos += 1
            argmax_agree += int(int(top[0]["token"]) == int(logprobs[i].argmax()))
        for t, lp, what in pairs:
            if not 0 <= t < vocab:
                problems.append(f"pos {i}: token {t} out of range")
                continue
            d = abs(lp - logprobs[i, t].item())
            n_cmp += 1
            if not d <= max_diff:  # also catches NaN
                max_diff, worst = (d if d == d else float("inf")), (i, t, what, lp, logprobs[i, t].item())
    if n_cmp == 0:
        problems.append("no log-probabilities to compare")

    print(f"compared {n_cmp} log-probabilities at {len(positions)} positions")
    print(f"max |logprob_moeflux - logprob_transformers| = {max_diff:.6f} (tol {args.tol})")
    if worst:
        i, t, what, lp, ref = worst
        print(f"  worst: pos {i} token {t} ({what}): moeflux {lp:.6f} transformers {ref:.6f}")
    if n_pos:
        print(f"top-1 agreement: {argmax_agree}/{n_pos}")
    for pr in problems:
        print("problem:", pr)
    ok = not problems and max_diff <= args.tol
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
