#!/usr/bin/env python3
"""Oracle fixtures of architectures that only transformers 5 has.

How to run (from the repository root; a Python with scripts/requirements-tf5.txt
and torch, as for gen_oracle_fixtures.py):

    .venv-tf5/bin/python scripts/gen_oracle_fixtures_tf5.py [--out DIR]

Writes, like gen_oracle_fixtures.py (whose docstring describes the files, the
reference tensors and the selection of token sequences without near ties):

  qwen3_5_moe_f32/, qwen3_5_moe_bf16/
      Qwen3_5MoeForConditionalGeneration as published checkpoints are: config
      with 'text_config' and a tiny 'vision_config', the text model's tensors
      under model.language_model.*, a vision tower under model.visual.* (which
      moeflux skips). The references are text-only forward passes of that
      model (input_ids only). Same odd sizes as the qwen3_next fixture:
      hidden 72, 3 query heads / 1 KV head of 24 (RoPE over 6 dims), Gated
      DeltaNet with 2 key heads of 12 and 4 value heads of 10, conv kernel 4,
      7 experts top-3 with a shared expert, layers linear/full/linear/linear.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_oracle_fixtures import (  # noqa: E402
    HEAD_DIM, HIDDEN, LOGIT_MARGIN_REL, MAX_ATTEMPTS, MAX_POS, N_EXPERTS, N_HEADS, N_KV_HEADS, ROUTER_GAP_MIN,
    SEQ_LENS, TOP_K, VOCAB, EXPERT_FFN, margins, stable_seed)

ARCH = "qwen3_5_moe"
TEXT = dict(
    vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=4, num_attention_heads=N_HEADS,
    num_key_value_heads=N_KV_HEADS, head_dim=HEAD_DIM, hidden_act="silu", max_position_embeddings=MAX_POS,
    rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=None,
    layer_types=["linear_attention", "full_attention", "linear_attention", "linear_attention"],
    linear_conv_kernel_dim=4, linear_key_head_dim=12, linear_value_head_dim=10, linear_num_key_heads=2,
    linear_num_value_heads=4, num_experts=N_EXPERTS, num_experts_per_tok=TOP_K, moe_intermediate_size=EXPERT_FFN,
    shared_expert_intermediate_size=48,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25,
                     "mrope_section": [1, 1, 1], "mrope_interleaved": True},
)
VISION = dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=HIDDEN, patch_size=2,
              temporal_patch_size=1, num_position_embeddings=16)


@torch.no_grad()
def reinit(model, seed: int) -> None:
    """Every parameter from a seeded generator, as gen_oracle_fixtures.reinit:
    linear ~ N(0, 1/fan_in), router ~ N(0, 4/hidden), lm_head ~ 3 N(0, 1/hidden),
    embedding N(0, 1), zero-centred RMSNorm 0.1 N(0, 1), gated norm 1 + 0.1 N,
    conv taps N(0, 1/kernel), A in U(0.05, 0.5), dt_bias 0.5 N; the vision tower
    (not loaded by moeflux) 0.02 N."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std + mean

    for name, p in sorted(model.named_parameters()):
        leaf = name.rsplit(".", 1)[-1]
        if ".visual." in f".{name}":
            v = normal(p.shape, 0.02)
        elif name == "lm_head.weight":
            v = normal(p.shape, 3.0 / p.shape[-1] ** 0.5)
        elif "embed_tokens" in name:
            v = normal(p.shape, 1.0)
        elif name.endswith("mlp.gate.weight"):
            v = normal(p.shape, 2.0 / p.shape[-1] ** 0.5)
        elif "linear_attn.norm" in name:
            v = normal(p.shape, 0.1, mean=1.0)
        elif "norm" in name:  # zero-centred: the model scales by 1 + weight
            v = normal(p.shape, 0.1)
        elif "conv1d" in name:
            v = normal(p.shape, 1.0 / p.shape[-1] ** 0.5)
        elif leaf == "A_log":
            v = torch.log(torch.rand(p.shape, generator=g, dtype=torch.float32) * 0.45 + 0.05)
        elif leaf == "dt_bias":
            v = normal(p.shape, 0.5)
        elif p.dim() >= 2:  # linear layers and the stacked experts [E, out, in]
            v = normal(p.shape, 1.0 / p.shape[-1] ** 0.5)
        else:
            raise RuntimeError(f"no rule for parameter {name} {tuple(p.shape)}")
        p.copy_(v)


def routers(model):
    return [m for n, m in model.named_modules() if n.endswith("mlp.gate")]


@torch.no_grad()
def forward(model, tokens):
    router, prenorm = [], []
    hooks = [m.register_forward_hook(lambda _m, _i, out: router.append(out[0].float())) for m in routers(model)]
    lm = model.model.language_model
    hooks.append(lm.layers[-1].register_forward_hook(
        lambda _m, _i, out: prenorm.append((out[0] if isinstance(out, tuple) else out).float())))
    try:
        out = model(input_ids=tokens[None].long(), output_hidden_states=True, use_cache=False, return_dict=True)
    finally:
        for h in hooks:
            h.remove()
    hidden = [h[0].float() for h in out.hidden_states]
    assert len(hidden) == lm.config.num_hidden_layers + 1, len(hidden)
    return out.logits[0].float(), hidden, prenorm[0][0], router


def same_choices(a, b, k):
    if not torch.equal(a[0].argmax(-1), b[0].argmax(-1)):
        return False
    for ra, rb in zip(a[3], b[3], strict=True):
        if not torch.equal(torch.topk(ra, k, -1).indices.sort(-1).values, torch.topk(rb, k, -1).indices.sort(-1).values):
            return False
    return True


def save_model(model, d: Path, dtype):
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (model if dtype == torch.float32 else model.to(dtype)).save_pretrained(d)
    for extra in ("generation_config.json",):
        if (d / extra).exists():
            (d / extra).unlink()
    assert sorted(os.listdir(d)) == ["config.json", "model.safetensors"], os.listdir(d)


def load(d: Path, dtype):
    m = Qwen3_5MoeForConditionalGeneration.from_pretrained(d, dtype=dtype, attn_implementation="eager")
    m.eval()
    return m


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "oracle")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "safetensors": safetensors.__version__, "numpy": np.__version__}
    print("versions:", versions)

    cfg = Qwen3_5MoeConfig(text_config=TEXT, vision_config=VISION)
    torch.manual_seed(stable_seed(ARCH, "construct"))
    model = Qwen3_5MoeForConditionalGeneration(cfg).float().eval()
    reinit(model, stable_seed(ARCH, "weights"))
    d32, d16 = args.out / f"{ARCH}_f32", args.out / f"{ARCH}_bf16"
    save_model(model, d32, torch.float32)
    save_model(model, d16, torch.bfloat16)
    del model
    m32, m16f, m16 = load(d32, torch.float32), load(d16, torch.float32), load(d16, torch.bfloat16)

    refs32, refs16, attempts = {}, {}, {}
    for L in SEQ_LENS:
        for attempt in range(MAX_ATTEMPTS):
            g = torch.Generator().manual_seed(stable_seed(ARCH, "tokens", L, attempt))
            tokens = torch.randint(0, VOCAB, (L,), generator=g, dtype=torch.int64).to(torch.int32)
            r32, r16f = forward(m32, tokens), forward(m16f, tokens)
            ok = True
            for logits, _, _, router in (r32, r16f):
                rel, gap = margins(logits, router, TOP_K)
                ok &= rel > LOGIT_MARGIN_REL and gap > ROUTER_GAP_MIN
            if not ok:
                continue
            r16 = forward(m16, tokens)
            if same_choices(r16f, r16, TOP_K):
                break
        else:
            raise RuntimeError(f"L={L}: no token sequence without near ties")
        attempts[L] = attempt
        for refs, (logits, hidden, prenorm, _) in ((refs32, r32), (refs16, r16f)):
            refs[f"tokens.{L}"] = tokens.clone()
            refs[f"logits.{L}"] = logits.contiguous()
            for i, h in enumerate(hidden):
                refs[f"hidden.{L}.{i}"] = h.contiguous()
            refs[f"hidden_prenorm.{L}"] = prenorm.contiguous()
        refs16[f"logits_bf16.{L}"] = r16[0].contiguous()
        print(f"  L={L:3d}: |logits_bf16 - logits| max {(r16[0] - r16f[0]).abs().max().item():.4f}")
    for d, refs, wdt in ((d32, refs32, "float32"), (d16, refs16, "bfloat16")):
        meta = {"arch": ARCH, "weights_dtype": wdt, "seq_lens": list(SEQ_LENS), "num_hidden_layers": 4,
                "dense_layers": [], "token_attempts": {str(k): v for k, v in attempts.items()},
                "generator": "scripts/gen_oracle_fixtures_tf5.py", "versions": versions}
        save_file(dict(sorted(refs.items())), str(d / "reference.safetensors"),
                  metadata={"oracle": json.dumps(meta, sort_keys=True)})
        total = sum(f.stat().st_size for f in d.iterdir())
        print(f"{d.name}: {total / 1e6:.3f} MB, token attempts {attempts}")
        assert total < 2_000_000
    return 0


if __name__ == "__main__":
    sys.exit(main())
