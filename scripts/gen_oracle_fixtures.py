#!/usr/bin/env python3
"""Generate the Hugging Face "oracle" fixtures for moeflux's model-level tests.

How to run (from the repository root):

    python -m venv .venv && .venv/bin/pip install -r scripts/requirements-oracle.txt
    .venv/bin/python scripts/gen_oracle_fixtures.py            # writes tests/fixtures/oracle/
    .venv/bin/python scripts/gen_oracle_fixtures.py --out DIR  # writes somewhere else

No network access is needed: every model is built from a config with random
weights (nothing is downloaded). Everything runs on the CPU, single-threaded,
from fixed seeds, so two runs with the pinned versions give byte-identical
files (check with `sha256sum tests/fixtures/oracle/*/*`).

What it writes: for each architecture ARCH in {qwen3_moe, qwen2_moe, mixtral,
olmoe, qwen3_next} two directories, OUT/ARCH_f32/ and OUT/ARCH_bf16/, each holding

  config.json          as written by `model.save_pretrained(dir, safe_serialization=True)`
                       ("dtype": "float32" / "bfloat16"; transformers 4.57 writes
                       `dtype`, not the older `torch_dtype`)
  model.safetensors    the weights, one file, stored as F32 or BF16
  reference.safetensors (written with the `safetensors` package), for each
                       sequence length L in {1, 17, 70}:
     tokens.L          int32   [L]          random token ids in [0, vocab)
     logits.L          float32 [L, vocab]   full-sequence forward pass (eager attention)
     hidden.L.i        float32 [L, hidden]  i = 0..num_layers: output_hidden_states[i];
                                            i < num_layers is the input of layer i
                                            (i = 0: the embeddings), i = num_layers is
                                            the output of the final norm
     hidden_prenorm.L  float32 [L, hidden]  output of the last decoder layer (before
                                            the final norm), which hidden.L.<n> hides
   bf16 directories only:
     logits_bf16.L     float32 [L, vocab]   the same forward pass run in torch bfloat16
                                            end to end (loaded with dtype=bfloat16)
   metadata: one key, "oracle", a JSON object (arch, weights_dtype, seq_lens,
   num_hidden_layers, dense_layers, token_attempts, generator, versions).
   In the bf16 directories logits.L / hidden.L.i are computed in float32 from the
   bf16-rounded weights (the checkpoint loaded with dtype=float32), i.e. exactly
   what an engine with bf16 weights and f32 arithmetic computes.

The models are tiny and deliberately odd-sized (hidden 72, head_dim 24, 3 query
heads, 1 KV head, 7 experts, top-3, expert ffn 40, vocab 211, 3 layers). Weights
are re-initialised (see `reinit`) so that logits have a healthy spread and the
routers are decisive. Token sequences are re-drawn (attempt 0, 1, ... of a
seed derived from arch and L) until
  * no position has a near tie in the top-1 logit or at the top-k router
    boundary, in the f32 model and in the bf16-weight model run in f32 (see
    `margins`), so that an engine computing the same function in a different
    order selects the same experts and the same argmax; and
  * the bf16 end-to-end run picks the same experts in every layer and the same
    argmax at every position as the f32-math run (see `same_choices`), so that
    logits_bf16 differs from logits only by smooth rounding error (no expert
    flip), and a plain max-abs bound between them is meaningful.
"""

from __future__ import annotations

import argparse
import hashlib
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
from transformers import (
    AutoModelForCausalLM,
    MixtralConfig,
    OlmoeConfig,
    Qwen2MoeConfig,
    Qwen3MoeConfig,
    Qwen3NextConfig,
)

SEQ_LENS = (1, 17, 70)
VOCAB = 211
HIDDEN = 72
HEAD_DIM = 24
N_HEADS = 3
N_KV_HEADS = 1
N_LAYERS = 3
N_EXPERTS = 7
TOP_K = 3
EXPERT_FFN = 40
DENSE_FFN = 56
MAX_POS = 256

# A position is accepted when top1 - top2 > LOGIT_MARGIN_REL * (max - min) of its
# logit row, and every MoE layer's router has a gap > ROUTER_GAP_MIN between the
# k-th and (k+1)-th largest router logit (the top-k boundary).
LOGIT_MARGIN_REL = 1e-3
ROUTER_GAP_MIN = 1e-3
MAX_ATTEMPTS = 1000

# clip_qkv for OLMoE: q/k (after their RMSNorm) and v are ~N(0,1)-sized, so 2.0
# clips a few percent of the entries (checked at run time).
OLMOE_CLIP_QKV = 2.0

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    num_attention_heads=N_HEADS,
    num_key_value_heads=N_KV_HEADS,
    num_hidden_layers=N_LAYERS,
    num_experts_per_tok=TOP_K,
    max_position_embeddings=MAX_POS,
    hidden_act="silu",
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
    use_cache=True,
)

ARCHS = {
    "qwen3_moe": (
        Qwen3MoeConfig,
        dict(
            head_dim=HEAD_DIM,
            num_experts=N_EXPERTS,
            moe_intermediate_size=EXPERT_FFN,
            intermediate_size=DENSE_FFN,  # the dense MLP of layer 1
            norm_topk_prob=True,
            decoder_sparse_step=1,
            mlp_only_layers=[1],
            rope_theta=1e6,
            rms_norm_eps=1e-6,
            attention_bias=False,
            use_sliding_window=False,
        ),
    ),
    "qwen2_moe": (
        Qwen2MoeConfig,
        dict(
            num_experts=N_EXPERTS,
            moe_intermediate_size=EXPERT_FFN,
            shared_expert_intermediate_size=48,
            intermediate_size=DENSE_FFN,  # the dense MLP of layers 0 and 2
            norm_topk_prob=False,
            decoder_sparse_step=2,  # sparse iff (layer+1) % 2 == 0 -> only layer 1
            mlp_only_layers=[],
            rope_theta=10000.0,
            rms_norm_eps=1e-6,
            qkv_bias=True,
            use_sliding_window=False,
        ),
    ),
    "mixtral": (
        MixtralConfig,
        dict(
            num_local_experts=N_EXPERTS,
            intermediate_size=EXPERT_FFN,
            sliding_window=None,
            rope_theta=1e6,
            rms_norm_eps=1e-5,
            router_jitter_noise=0.0,
        ),
    ),
    # Gated DeltaNet layers (linear attention) and gated full attention,
    # odd sizes: 2 key heads of 12, 4 value heads of 10 (2 per key head),
    # conv kernel 4, partial RoPE over 6 of 24 dims; layer 2 dense.
    "qwen3_next": (
        Qwen3NextConfig,
        dict(
            num_hidden_layers=4,
            layer_types=["linear_attention", "full_attention", "linear_attention", "linear_attention"],
            head_dim=HEAD_DIM,
            partial_rotary_factor=0.25,
            linear_conv_kernel_dim=4,
            linear_key_head_dim=12,
            linear_value_head_dim=10,
            linear_num_key_heads=2,
            linear_num_value_heads=4,
            num_experts=N_EXPERTS,
            moe_intermediate_size=EXPERT_FFN,
            shared_expert_intermediate_size=48,
            intermediate_size=DENSE_FFN,  # the dense MLP of layer 2
            norm_topk_prob=True,
            decoder_sparse_step=1,
            mlp_only_layers=[2],
            rope_theta=10000.0,
            rms_norm_eps=1e-6,
            attention_bias=False,
        ),
    ),
    "olmoe": (
        OlmoeConfig,
        dict(
            num_experts=N_EXPERTS,
            intermediate_size=EXPERT_FFN,
            norm_topk_prob=False,
            clip_qkv=OLMOE_CLIP_QKV,
            rope_theta=10000.0,
            rms_norm_eps=1e-5,
            attention_bias=False,
        ),
    ),
}


def stable_seed(*parts) -> int:
    """A seed from a string, stable across runs and Python versions (unlike hash())."""
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def build_model(arch: str):
    cls, kw = ARCHS[arch]
    config = cls(**{**COMMON, **kw})
    config._attn_implementation = "eager"
    torch.manual_seed(stable_seed(arch, "construct"))
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    reinit(model, stable_seed(arch, "weights"))
    return model


@torch.no_grad()
def reinit(model: torch.nn.Module, seed: int) -> None:
    """Re-initialise every parameter from a seeded generator.

    linear weight ~ N(0, 1/in_features), router (the MoE `gate`) ~ N(0, 4/hidden),
    lm_head ~ 3 * N(0, 1/hidden), embedding ~ N(0, 1), RMSNorm weight ~ 1 + 0.1 N(0,1),
    bias ~ 0.1 N(0, 1). (Variances; draws are float32 on the CPU.)
    """
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std + mean

    done = set()
    for name, mod in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(mod, torch.nn.Embedding):
            mod.weight.copy_(normal(mod.weight.shape, 1.0))
            done.add(f"{name}.weight")
        elif isinstance(mod, torch.nn.Linear):
            fan_in = mod.in_features
            if name == "lm_head":
                std = 3.0 / fan_in**0.5
            elif leaf == "gate":  # the router: mlp.gate / block_sparse_moe.gate
                std = 2.0 / fan_in**0.5
            else:
                std = 1.0 / fan_in**0.5
            mod.weight.copy_(normal(mod.weight.shape, std))
            done.add(f"{name}.weight")
            if mod.bias is not None:
                mod.bias.copy_(normal(mod.bias.shape, 0.1))
                done.add(f"{name}.bias")
        elif type(mod).__name__ == "Qwen3NextRMSNorm":  # zero-centred: scales by 1 + weight
            mod.weight.copy_(normal(mod.weight.shape, 0.1))
            done.add(f"{name}.weight")
        elif type(mod).__name__.endswith(("RMSNorm", "RMSNormGated")):
            mod.weight.copy_(normal(mod.weight.shape, 0.1, mean=1.0))
            done.add(f"{name}.weight")
        elif isinstance(mod, torch.nn.Conv1d):  # DeltaNet's depthwise conv: taps ~ N(0, 1/kernel)
            mod.weight.copy_(normal(mod.weight.shape, 1.0 / mod.kernel_size[0] ** 0.5))
            done.add(f"{name}.weight")
        if type(mod).__name__.endswith("GatedDeltaNet"):
            # Decay exp(-A softplus(a + dt_bias)) mostly in (0.5, 1): a state
            # that remembers tens of tokens, so the recurrence is exercised.
            A = torch.rand(mod.A_log.shape, generator=g, dtype=torch.float32) * 0.45 + 0.05
            mod.A_log.copy_(torch.log(A))
            mod.dt_bias.copy_(normal(mod.dt_bias.shape, 0.5))
            done.update({f"{name}.A_log", f"{name}.dt_bias"})
    missing = {n for n, _ in model.named_parameters()} - done
    if missing:
        raise RuntimeError(f"parameters not re-initialised: {sorted(missing)}")


def moe_blocks(model):
    return [(n, m) for n, m in model.named_modules() if type(m).__name__.endswith("SparseMoeBlock")]


def dense_layers(model) -> list[int]:
    sparse = {int(n.split(".")[2]) for n, _ in moe_blocks(model)}
    return [i for i in range(model.config.num_hidden_layers) if i not in sparse]


@torch.no_grad()
def forward(model, tokens: torch.Tensor):
    """Full-sequence forward; returns logits, hidden tuple, last-layer pre-norm
    output and the router logits of every MoE layer (all as float32 on CPU)."""
    router = []
    prenorm = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: router.append(out[1].float())) for _, m in moe_blocks(model)]
    last = model.model.layers[-1]
    hooks.append(
        last.register_forward_hook(
            lambda _m, _i, out: prenorm.append((out[0] if isinstance(out, tuple) else out).float())
        )
    )
    try:
        out = model(
            input_ids=tokens[None].long(),
            output_hidden_states=True,
            use_cache=False,
            return_dict=True,
        )
    finally:
        for h in hooks:
            h.remove()
    logits = out.logits[0].float()
    hidden = [h[0].float() for h in out.hidden_states]
    assert len(hidden) == model.config.num_hidden_layers + 1
    return logits, hidden, prenorm[0][0], router


def margins(logits: torch.Tensor, router: list[torch.Tensor], k: int):
    """(min over positions of (top1-top2)/(max-min), min router top-k gap)."""
    s = torch.sort(logits, dim=-1, descending=True).values
    rel = ((s[:, 0] - s[:, 1]) / (s[:, 0] - s[:, -1])).min().item()
    gap = float("inf")
    for r in router:
        rs = torch.sort(r, dim=-1, descending=True).values
        gap = min(gap, (rs[:, k - 1] - rs[:, k]).min().item())
    return rel, gap


def same_choices(a, b, k: int) -> bool:
    """True when two forward() results pick the same top-k expert set in every
    MoE layer at every position and the same argmax token at every position."""
    if not torch.equal(a[0].argmax(-1), b[0].argmax(-1)):
        return False
    for ra, rb in zip(a[3], b[3], strict=True):
        sa = torch.topk(ra, k, dim=-1).indices.sort(dim=-1).values
        sb = torch.topk(rb, k, dim=-1).indices.sort(dim=-1).values
        if not torch.equal(sa, sb):
            return False
    return True


def count_olmoe_clipping(model, tokens) -> dict:
    """Counts q/k/v entries beyond +-clip_qkv (before the clamp) over all layers."""
    clip = model.config.clip_qkv
    counts = {"q": 0, "k": 0, "v": 0, "total_q": 0, "total_k": 0, "total_v": 0}
    hooks = []
    for layer in model.model.layers:
        att = layer.self_attn
        for key, mod in (("q", att.q_norm), ("k", att.k_norm), ("v", att.v_proj)):
            def hook(_m, _i, out, key=key):
                counts[key] += int((out.abs() > clip).sum())
                counts["total_" + key] += out.numel()
            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(input_ids=tokens[None].long(), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return counts


def load(d: Path, dtype):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation="eager")
    m.eval()
    return m


def save_model(model, d: Path, dtype) -> None:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    m = model if dtype == torch.float32 else model.to(dtype)
    m.save_pretrained(d, safe_serialization=True)
    gc = d / "generation_config.json"
    if gc.exists():
        gc.unlink()
    assert sorted(os.listdir(d)) == ["config.json", "model.safetensors"], os.listdir(d)
    cfg = json.loads((d / "config.json").read_text())
    want = "float32" if dtype == torch.float32 else "bfloat16"
    got = cfg.get("dtype", cfg.get("torch_dtype"))
    assert got == want, (d, got, want)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "oracle",
    )
    ap.add_argument("--arch", action="append", choices=sorted(ARCHS), help="only these (default: all)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }
    print("versions:", versions)

    summary = []
    for arch in args.arch or list(ARCHS):
        model = build_model(arch)
        cfg = model.config
        d32 = args.out / f"{arch}_f32"
        d16 = args.out / f"{arch}_bf16"
        # The f32 checkpoint first: save_model casts the in-memory model to bf16.
        ref_state = {k: v.clone() for k, v in model.state_dict().items()}
        save_model(model, d32, torch.float32)
        save_model(model, d16, torch.bfloat16)
        del model

        m32 = load(d32, torch.float32)  # f32 weights, f32 math
        m16f = load(d16, torch.float32)  # bf16-rounded weights, f32 math
        m16 = load(d16, torch.bfloat16)  # bf16 end to end
        for k, v in m32.state_dict().items():
            assert torch.equal(v, ref_state[k]), f"f32 round trip changed {k}"
        for k, v in m16f.state_dict().items():
            assert torch.equal(v, ref_state[k].to(torch.bfloat16).float()), f"bf16 round trip changed {k}"
        assert m16.model.rotary_emb.inv_freq.dtype == torch.float32

        dense = dense_layers(m32)
        refs32, refs16 = {}, {}
        meta_attempts = {}
        bf16_stats = []
        for L in SEQ_LENS:
            for attempt in range(MAX_ATTEMPTS):
                g = torch.Generator().manual_seed(stable_seed(arch, "tokens", L, attempt))
                tokens = torch.randint(0, cfg.vocab_size, (L,), generator=g, dtype=torch.int64).to(torch.int32)
                r32 = forward(m32, tokens)
                r16f = forward(m16f, tokens)
                ok = True
                for logits, _, _, router in (r32, r16f):
                    rel, gap = margins(logits, router, cfg.num_experts_per_tok)
                    ok &= rel > LOGIT_MARGIN_REL and gap > ROUTER_GAP_MIN
                if not ok:
                    continue
                r16 = forward(m16, tokens)
                if same_choices(r16f, r16, cfg.num_experts_per_tok):
                    break
            else:
                raise RuntimeError(f"{arch} L={L}: no token sequence without near ties")
            meta_attempts[L] = attempt
            logits16 = r16[0]
            for refs, (logits, hidden, prenorm, _) in ((refs32, r32), (refs16, r16f)):
                refs[f"tokens.{L}"] = tokens.clone()
                refs[f"logits.{L}"] = logits.contiguous()
                for i, h in enumerate(hidden):
                    refs[f"hidden.{L}.{i}"] = h.contiguous()
                refs[f"hidden_prenorm.{L}"] = prenorm.contiguous()
            refs16[f"logits_bf16.{L}"] = logits16.contiguous()
            diff = (logits16 - r16f[0]).abs()
            agree = (logits16.argmax(-1) == r16f[0].argmax(-1)).float().mean().item()
            bf16_stats.append((L, diff.max().item(), agree))

        if arch == "olmoe":
            c = count_olmoe_clipping(m32, refs32[f"tokens.{SEQ_LENS[-1]}"])
            print(f"  olmoe clip_qkv={cfg.clip_qkv}: clipped q {c['q']}/{c['total_q']}, "
                  f"k {c['k']}/{c['total_k']}, v {c['v']}/{c['total_v']}")
            assert c["q"] > 0 and c["k"] > 0 and c["v"] > 0, c

        for d, refs, wdt in ((d32, refs32, "float32"), (d16, refs16, "bfloat16")):
            meta = {
                "arch": arch,
                "weights_dtype": wdt,
                "seq_lens": list(SEQ_LENS),
                "num_hidden_layers": cfg.num_hidden_layers,
                "dense_layers": dense,
                "token_attempts": {str(k): v for k, v in meta_attempts.items()},
                "generator": "scripts/gen_oracle_fixtures.py",
                "versions": versions,
            }
            # One metadata key: safetensors keeps metadata in a Rust HashMap, so
            # several keys would be written in a random order (not byte-stable).
            save_file(
                dict(sorted(refs.items())),
                str(d / "reference.safetensors"),
                metadata={"oracle": json.dumps(meta, sort_keys=True)},
            )

        print(f"{arch}: dense layers {dense}, token attempts {meta_attempts}")
        for L, mx, agree in bf16_stats:
            print(f"  L={L:3d}: |logits_bf16 - logits| max {mx:.4f}, top-1 agreement {agree:.3f}")
        summary += [d32, d16]

    print("\nfixture sizes:")
    for d in summary:
        files = sorted(d.iterdir())
        total = sum(f.stat().st_size for f in files)
        print(f"  {d.name:16s} {total / 1e6:6.3f} MB  " + "  ".join(f"{f.name}={f.stat().st_size}" for f in files))
        assert total < 2_000_000, f"{d} is larger than 2 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
