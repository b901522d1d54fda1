#!/usr/bin/env python3
"""Generate the DeepSeek-V3 "oracle" fixtures for moeflux's model-level tests.

A sibling of gen_oracle_fixtures.py (same environment, requirements-oracle.txt;
same output layout and reference keys, see its docstring), for the
architectures whose router is not a softmax over logits:

    .venv/bin/python scripts/gen_oracle_deepseek.py            # writes tests/fixtures/oracle/
    .venv/bin/python scripts/gen_oracle_deepseek.py --out DIR

Two tiny random DeepseekV3ForCausalLM models, odd-sized, each as _f32 and _bf16:

  deepseek_v3        q_lora_rank 40 (q_a_proj -> q_a_layernorm -> q_b_proj),
                     YaRN RoPE (factor 4, mscale 1, mscale_all_dim 0.8: both the
                     cos/sin attention factor and the softmax-scale correction are
                     not 1), interleaved RoPE, 9 experts in 3 groups of which 2
                     are kept, top-3, 2 shared experts, norm_topk_prob, scaling
                     2.5, first layer dense.
  deepseek_v3_qproj  q_lora_rank null (one q_proj), no RoPE scaling,
                     rope_interleave false, 7 experts in one group, top-2,
                     1 shared expert, no renormalisation, scaling 1.5, first
                     two layers dense.

Both have qk_nope_head_dim 10, qk_rope_head_dim 8, v_head_dim 14, kv_lora_rank
36, 3 heads. The router's e_score_correction_bias is drawn at random (it is
zero at initialisation) so that it changes which experts are chosen.

Token sequences are re-drawn until every position has a clear top-1 logit and
every MoE layer a clear routing decision: a gap above ROUTER_GAP_MIN between
the topk_group-th and the next group score, and between the k-th and the
next masked choice score (sigmoid + bias), in the f32 model and in the
bf16-weight model run in f32; and the bf16 end-to-end run chooses the same
experts and argmax.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, DeepseekV3Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_oracle_fixtures as base  # noqa: E402

SEQ_LENS = base.SEQ_LENS
LOGIT_MARGIN_REL = base.LOGIT_MARGIN_REL
ROUTER_GAP_MIN = 1e-3
MAX_ATTEMPTS = base.MAX_ATTEMPTS

COMMON = dict(
    vocab_size=base.VOCAB,
    hidden_size=base.HIDDEN,
    num_attention_heads=3,
    num_key_value_heads=3,
    num_hidden_layers=3,
    max_position_embeddings=base.MAX_POS,
    hidden_act="silu",
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
    use_cache=True,
    kv_lora_rank=36,
    qk_nope_head_dim=10,
    qk_rope_head_dim=8,
    v_head_dim=14,
    moe_intermediate_size=40,
    intermediate_size=base.DENSE_FFN,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    attention_bias=False,
)

ARCHS = {
    "deepseek_v3": dict(
        q_lora_rank=40,
        rope_scaling=dict(
            type="yarn",
            factor=4.0,
            original_max_position_embeddings=64,
            beta_fast=32,
            beta_slow=1,
            mscale=1.0,
            mscale_all_dim=0.8,
        ),
        rope_interleave=True,
        n_routed_experts=9,
        n_group=3,
        topk_group=2,
        num_experts_per_tok=3,
        n_shared_experts=2,
        norm_topk_prob=True,
        routed_scaling_factor=2.5,
        first_k_dense_replace=1,
    ),
    "deepseek_v3_qproj": dict(
        q_lora_rank=None,
        rope_scaling=None,
        rope_interleave=False,
        n_routed_experts=7,
        n_group=1,
        topk_group=1,
        num_experts_per_tok=2,
        n_shared_experts=1,
        norm_topk_prob=False,
        routed_scaling_factor=1.5,
        first_k_dense_replace=2,
    ),
}


def build_model(arch: str):
    config = DeepseekV3Config(**COMMON, **ARCHS[arch])
    config._attn_implementation = "eager"
    torch.manual_seed(base.stable_seed(arch, "construct"))
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    reinit(model, base.stable_seed(arch, "weights"))
    return model


@torch.no_grad()
def reinit(model, seed: int) -> None:
    """As gen_oracle_fixtures.reinit, plus the router (a bare Parameter, not a
    Linear: ~ N(0, 4/hidden)) and its correction bias (~ 0.1 N(0, 1))."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std + mean

    done = set()
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Embedding):
            mod.weight.copy_(normal(mod.weight.shape, 1.0))
            done.add(f"{name}.weight")
        elif isinstance(mod, torch.nn.Linear):
            std = (3.0 if name == "lm_head" else 1.0) / mod.in_features**0.5
            mod.weight.copy_(normal(mod.weight.shape, std))
            done.add(f"{name}.weight")
            assert mod.bias is None
        elif type(mod).__name__.endswith("RMSNorm"):
            mod.weight.copy_(normal(mod.weight.shape, 0.1, mean=1.0))
            done.add(f"{name}.weight")
        elif type(mod).__name__.endswith("TopkRouter"):
            mod.weight.copy_(normal(mod.weight.shape, 2.0 / mod.weight.shape[1] ** 0.5))
            mod.e_score_correction_bias.copy_(normal(mod.e_score_correction_bias.shape, 0.1))
            done.add(f"{name}.weight")
    missing = {n for n, _ in model.named_parameters()} - done
    if missing:
        raise RuntimeError(f"parameters not re-initialised: {sorted(missing)}")


def routers(model):
    return [m for _, m in model.named_modules() if type(m).__name__.endswith("TopkRouter")]


def router_decision(r, hidden):
    """The routing of one layer as transformers computes it: (chosen expert sets
    sorted, min group gap, min expert gap) over the rows of `hidden`."""
    h = hidden.reshape(-1, r.config.hidden_size)
    scores = torch.nn.functional.linear(h.float(), r.weight.float()).sigmoid()
    choice = scores + r.e_score_correction_bias.float()[None]
    E, G, K = r.n_routed_experts, r.n_group, r.topk_group
    groups = choice.view(-1, G, E // G).topk(2, dim=-1)[0].sum(-1)
    gs = torch.sort(groups, dim=-1, descending=True).values
    group_gap = (gs[:, K - 1] - gs[:, K]).min().item() if K < G else float("inf")
    idx = torch.topk(groups, k=K, dim=-1, sorted=False)[1]
    mask = torch.zeros_like(groups).scatter_(1, idx, 1).unsqueeze(-1).expand(-1, G, E // G).reshape(-1, E)
    masked = choice.masked_fill(~mask.bool(), 0.0)
    ms = torch.sort(masked, dim=-1, descending=True).values
    k = r.top_k
    expert_gap = (ms[:, k - 1] - ms[:, k]).min().item()
    chosen = torch.topk(masked, k, dim=-1).indices.sort(dim=-1).values
    return chosen, group_gap, expert_gap


@torch.no_grad()
def forward(model, tokens):
    decisions, prenorm = [], []
    hooks = [
        r.register_forward_hook(lambda m, inp, _out: decisions.append(router_decision(m, inp[0])))
        for r in routers(model)
    ]
    hooks.append(
        model.model.layers[-1].register_forward_hook(
            lambda _m, _i, out: prenorm.append((out[0] if isinstance(out, tuple) else out).float())
        )
    )
    try:
        out = model(input_ids=tokens[None].long(), output_hidden_states=True, use_cache=False, return_dict=True)
    finally:
        for h in hooks:
            h.remove()
    logits = out.logits[0].float()
    hidden = [h[0].float() for h in out.hidden_states]
    return logits, hidden, prenorm[0][0], decisions


def clear(result) -> bool:
    logits, _, _, decisions = result
    s = torch.sort(logits, dim=-1, descending=True).values
    rel = ((s[:, 0] - s[:, 1]) / (s[:, 0] - s[:, -1])).min().item()
    return rel > LOGIT_MARGIN_REL and all(gg > ROUTER_GAP_MIN and eg > ROUTER_GAP_MIN for _, gg, eg in decisions)


def same_choices(a, b) -> bool:
    if not torch.equal(a[0].argmax(-1), b[0].argmax(-1)):
        return False
    return all(torch.equal(da[0], db[0]) for da, db in zip(a[3], b[3], strict=True))


@torch.no_grad()
def decode_matches(model, tokens, logits) -> float:
    """Token-by-token decode with transformers' own cache: max |diff| to the
    full-sequence logits (a check of the reference itself)."""
    past = None
    rows = []
    for t in range(tokens.shape[0]):
        out = model(input_ids=tokens[None, t : t + 1].long(), past_key_values=past, use_cache=True, return_dict=True)
        past = out.past_key_values
        rows.append(out.logits[0, -1].float())
    return (torch.stack(rows) - logits).abs().max().item()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "oracle")
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
        d32, d16 = args.out / f"{arch}_f32", args.out / f"{arch}_bf16"
        ref_state = {k: v.clone() for k, v in model.state_dict().items()}
        base.save_model(model, d32, torch.float32)
        base.save_model(model, d16, torch.bfloat16)
        del model
        m32, m16f, m16 = base.load(d32, torch.float32), base.load(d16, torch.float32), base.load(d16, torch.bfloat16)
        for k, v in m32.state_dict().items():
            assert torch.equal(v, ref_state[k]), f"f32 round trip changed {k}"
        for k, v in m16f.state_dict().items():
            assert torch.equal(v, ref_state[k].to(torch.bfloat16).float()), f"bf16 round trip changed {k}"

        dense = list(range(cfg.first_k_dense_replace))
        refs32, refs16, attempts, stats = {}, {}, {}, []
        for L in SEQ_LENS:
            for attempt in range(MAX_ATTEMPTS):
                g = torch.Generator().manual_seed(base.stable_seed(arch, "tokens", L, attempt))
                tokens = torch.randint(0, cfg.vocab_size, (L,), generator=g, dtype=torch.int64).to(torch.int32)
                r32, r16f = forward(m32, tokens), forward(m16f, tokens)
                if not (clear(r32) and clear(r16f)):
                    continue
                r16 = forward(m16, tokens)
                if same_choices(r16f, r16):
                    break
            else:
                raise RuntimeError(f"{arch} L={L}: no token sequence without near ties")
            attempts[L] = attempt
            for refs, (logits, hidden, prenorm, _) in ((refs32, r32), (refs16, r16f)):
                refs[f"tokens.{L}"] = tokens.clone()
                refs[f"logits.{L}"] = logits.contiguous()
                for i, h in enumerate(hidden):
                    refs[f"hidden.{L}.{i}"] = h.contiguous()
                refs[f"hidden_prenorm.{L}"] = prenorm.contiguous()
            refs16[f"logits_bf16.{L}"] = r16[0].contiguous()
            stats.append((L, (r16[0] - r16f[0]).abs().max().item(), decode_matches(m32, tokens, r32[0])))

        for d, refs, wdt in ((d32, refs32, "float32"), (d16, refs16, "bfloat16")):
            meta = {
                "arch": arch,
                "weights_dtype": wdt,
                "seq_lens": list(SEQ_LENS),
                "num_hidden_layers": cfg.num_hidden_layers,
                "dense_layers": dense,
                "token_attempts": {str(k): v for k, v in attempts.items()},
                "generator": "scripts/gen_oracle_deepseek.py",
                "versions": versions,
            }
            save_file(dict(sorted(refs.items())), str(d / "reference.safetensors"),
                      metadata={"oracle": json.dumps(meta, sort_keys=True)})
        print(f"{arch}: dense layers {dense}, token attempts {attempts}")
        for L, mx, dec in stats:
            print(f"  L={L:3d}: |logits_bf16 - logits| max {mx:.4f}; transformers' own cached decode differs by {dec:.2e}")
        summary += [d32, d16]

    for d in summary:
        files = sorted(d.iterdir())
        total = sum(f.stat().st_size for f in files)
        print(f"  {d.name:22s} {total / 1e6:6.3f} MB")
        assert total < 2_000_000, f"{d} is larger than 2 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
