#!/usr/bin/env python3
"""Generate the gpt-oss "oracle" fixtures for moeflux's model-level tests.

A sibling of gen_oracle_fixtures.py (same environment, requirements-oracle.txt:
transformers 4.57.1; same output layout and reference keys, see its docstring):

    .venv/bin/python scripts/gen_oracle_gptoss.py            # writes tests/fixtures/oracle/
    .venv/bin/python scripts/gen_oracle_gptoss.py --out DIR

One tiny random GptOssForCausalLM, 3 layers (sliding, full, sliding; window 5,
so that the 17- and 70-token sequences attend past it), hidden 64, 3 heads of
24 over 1 KV head, 5 experts of 32 top-2, YaRN RoPE (factor 4, truncate false),
random attention sinks and biases (q/k/v/o, router, experts). The expert
gate/up weights are drawn wide (std 4/sqrt(hidden)) so that the clamped
SwiGLU's limit (7) cuts a few percent of the gate and up values (checked).

Three fixtures:
  gpt_oss_f32, gpt_oss_bf16  transformers' own save_pretrained (fused plain
                             experts: gate_up_proj [E, hidden, 2F] ...).
  gpt_oss_mxfp4              the same model with its routed expert weights
                             rounded to MXFP4 and stored as the original
                             checkpoints store them (mlp.experts.
                             gate_up_proj_blocks/_scales, down_proj_blocks/
                             _scales, uint8; quantization_config mxfp4). The
                             reference is the model whose expert weights are
                             transformers' own dequantization of those bytes
                             (integrations.mxfp4.convert_moe_packed_tensors),
                             run in f32.
and tests/fixtures/gpt_oss_mxfp4_dequant.safetensors: random blocks and
scales (every code, scales 100..150) with that function's output, for the
unit test of moeflux's own reading.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, GptOssConfig
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_oracle_fixtures as base  # noqa: E402

SEQ_LENS = base.SEQ_LENS
LOGIT_MARGIN_REL = base.LOGIT_MARGIN_REL
ROUTER_GAP_MIN = 1e-3
MAX_ATTEMPTS = base.MAX_ATTEMPTS
ARCH = "gpt_oss"

CONFIG = dict(
    vocab_size=base.VOCAB,
    hidden_size=64,
    intermediate_size=32,
    num_attention_heads=3,
    num_key_value_heads=1,
    head_dim=24,
    num_hidden_layers=3,
    num_local_experts=5,
    num_experts_per_tok=2,
    sliding_window=5,
    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
    max_position_embeddings=base.MAX_POS,
    rope_theta=150000.0,
    rope_scaling=dict(
        rope_type="yarn",
        factor=4.0,
        beta_fast=32.0,
        beta_slow=1.0,
        truncate=False,
        original_max_position_embeddings=64,
    ),
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
    use_cache=True,
)


def build_model():
    config = GptOssConfig(**CONFIG)
    config._attn_implementation = "eager"
    torch.manual_seed(base.stable_seed(ARCH, "construct"))
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    reinit(model, base.stable_seed(ARCH, "weights"))
    return model


@torch.no_grad()
def reinit(model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std + mean

    done = set()
    for name, p in model.named_parameters():
        shape = p.shape
        if name.endswith("embed_tokens.weight"):
            v = normal(shape, 1.0)
        elif name == "lm_head.weight":
            v = normal(shape, 3.0 / shape[1] ** 0.5)
        elif name.endswith("norm.weight"):
            v = normal(shape, 0.1, mean=1.0)
        elif name.endswith("_proj.weight"):  # attention projections
            v = normal(shape, 1.0 / shape[1] ** 0.5)
        elif name.endswith("_proj.bias"):
            v = normal(shape, 0.1)
        elif name.endswith("self_attn.sinks"):
            v = normal(shape, 1.0)
        elif name.endswith("router.weight"):
            v = normal(shape, 2.0 / shape[1] ** 0.5)
        elif name.endswith("router.bias"):
            v = normal(shape, 0.5)
        elif name.endswith("experts.gate_up_proj"):  # [E, hidden, 2F]
            v = normal(shape, 4.0 / shape[1] ** 0.5)
        elif name.endswith("experts.down_proj"):  # [E, F, hidden]
            v = normal(shape, 1.0 / shape[1] ** 0.5)
        elif name.endswith("experts.gate_up_proj_bias") or name.endswith("experts.down_proj_bias"):
            v = normal(shape, 0.3)
        else:
            continue
        p.copy_(v)
        done.add(name)
    missing = {n for n, _ in model.named_parameters()} - done
    if missing:
        raise RuntimeError(f"parameters not re-initialised: {sorted(missing)}")


# ---- MXFP4 as the original checkpoints store it ----

E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], np.float32)


def quantize_mxfp4(w: np.ndarray):
    """w [..., rows, cols] (cols % 32 == 0) -> blocks [..., rows, cols/32, 16] and
    scales [..., rows, cols/32] (uint8): per block the E8M0 scale 2^(s-127) with
    the block's max |w| / 2^s <= 6, each element the nearest E2M1 code; the low
    nibble of byte j is element 2j (convert_moe_packed_tensors' order)."""
    *pre, rows, cols = w.shape
    b = w.reshape(*pre, rows, cols // 32, 32).astype(np.float64)
    amax = np.abs(b).max(-1)
    exp = np.where(amax > 0, np.ceil(np.log2(np.maximum(amax, 1e-30) / 6.0)), 0).astype(np.int64)
    exp = np.clip(exp, -127, 127)
    scaled = b / np.ldexp(1.0, exp)[..., None]
    codes = np.abs(scaled[..., None] - E2M1.astype(np.float64)).argmin(-1).astype(np.uint8)
    blocks = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    scales = (exp + 127).astype(np.uint8)
    return blocks, scales


def dequant(blocks: np.ndarray, scales: np.ndarray) -> torch.Tensor:
    """transformers' own: [E, rows, G, 16] -> [E, G*32, rows] (f32)."""
    return convert_moe_packed_tensors(torch.from_numpy(blocks), torch.from_numpy(scales), dtype=torch.float32)


@torch.no_grad()
def to_mxfp4(model):
    """Rounds every layer's expert weights to MXFP4 (in place: the model then holds
    exactly transformers' dequantization of the stored bytes) and returns the
    packed tensors by checkpoint name."""
    packed = {}
    for i, layer in enumerate(model.model.layers):
        ex = layer.mlp.experts
        for proj in ("gate_up_proj", "down_proj"):
            w = getattr(ex, proj).detach().float()  # [E, in, out]
            blocks, scales = quantize_mxfp4(w.transpose(1, 2).contiguous().numpy())  # rows = out features
            getattr(ex, proj).copy_(dequant(blocks, scales))
            name = f"model.layers.{i}.mlp.experts.{proj}"
            packed[name + "_blocks"] = torch.from_numpy(blocks)
            packed[name + "_scales"] = torch.from_numpy(scales)
    return packed


def save_mxfp4(model, packed, d: Path) -> None:
    """The checkpoint as openai/gpt-oss stores it: experts as blocks + scales,
    everything else bf16 (the released files' dtype)."""
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    tensors = {}
    for name, p in model.state_dict().items():
        if name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
            continue
        tensors[name] = p.detach().to(torch.bfloat16).contiguous()
    tensors.update(packed)
    save_file(dict(sorted(tensors.items())), str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg["torch_dtype"] = "bfloat16"
    cfg.pop("dtype", None)
    cfg["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    (d / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def routers(model):
    return [m for _, m in model.named_modules() if type(m).__name__ == "GptOssTopKRouter"]


def experts_mods(model):
    return [m for _, m in model.named_modules() if type(m).__name__ == "GptOssExperts"]


def router_decision(r, hidden):
    h = hidden.reshape(-1, r.hidden_dim).float()
    logits = torch.nn.functional.linear(h, r.weight.float(), r.bias.float())
    s = torch.sort(logits, dim=-1, descending=True).values
    gap = (s[:, r.top_k - 1] - s[:, r.top_k]).min().item()
    chosen = torch.topk(logits, r.top_k, dim=-1).indices.sort(dim=-1).values
    return chosen, gap


@torch.no_grad()
def forward(model, tokens, clamp_counter=None):
    decisions, prenorm = [], []
    hooks = [
        r.register_forward_hook(lambda m, inp, _out: decisions.append(router_decision(m, inp[0])))
        for r in routers(model)
    ]
    if clamp_counter is not None:
        def count(m, inp, _out):
            h = inp[0].reshape(-1, m.hidden_size).float()
            gu = torch.einsum("td,edf->etf", h, m.gate_up_proj.float()) + m.gate_up_proj_bias.float()[:, None]
            clamp_counter[0] += int((gu[..., ::2] > m.limit).sum() + (gu[..., 1::2].abs() > m.limit).sum())
            clamp_counter[1] += gu.numel()
        hooks += [e.register_forward_hook(count) for e in experts_mods(model)]
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
    return rel > LOGIT_MARGIN_REL and all(gap > ROUTER_GAP_MIN for _, gap in decisions)


def same_choices(a, b) -> bool:
    if not torch.equal(a[0].argmax(-1), b[0].argmax(-1)):
        return False
    return all(torch.equal(da[0], db[0]) for da, db in zip(a[3], b[3], strict=True))


@torch.no_grad()
def decode_matches(model, tokens, logits) -> float:
    past = None
    rows = []
    for t in range(tokens.shape[0]):
        out = model(input_ids=tokens[None, t : t + 1].long(), past_key_values=past, use_cache=True, return_dict=True)
        past = out.past_key_values
        rows.append(out.logits[0, -1].float())
    return (torch.stack(rows) - logits).abs().max().item()


def write_refs(d: Path, refs, meta) -> None:
    save_file(dict(sorted(refs.items())), str(d / "reference.safetensors"),
              metadata={"oracle": json.dumps(meta, sort_keys=True)})


def pick_tokens(name, models_clear, models_same, vocab):
    """Per length, the first token draw with clear decisions in every model of
    models_clear and the same choices in each pair of models_same."""
    out = {}
    for L in SEQ_LENS:
        for attempt in range(MAX_ATTEMPTS):
            g = torch.Generator().manual_seed(base.stable_seed(name, "tokens", L, attempt))
            tokens = torch.randint(0, vocab, (L,), generator=g, dtype=torch.int64).to(torch.int32)
            rs = [forward(m, tokens) for m in models_clear]
            if not all(clear(r) for r in rs):
                continue
            if all(same_choices(forward(a, tokens), forward(b, tokens)) for a, b in models_same):
                out[L] = (tokens, attempt, rs)
                break
        else:
            raise RuntimeError(f"{name} L={L}: no token sequence without near ties")
    return out


def refs_of(tokens, result):
    logits, hidden, prenorm, _ = result
    L = tokens.shape[0]
    refs = {f"tokens.{L}": tokens.clone(), f"logits.{L}": logits.contiguous(), f"hidden_prenorm.{L}": prenorm.contiguous()}
    for i, h in enumerate(hidden):
        refs[f"hidden.{L}.{i}"] = h.contiguous()
    return refs


def dequant_fixture(path: Path) -> None:
    g = np.random.default_rng(base.stable_seed(ARCH, "mxfp4-dequant"))
    blocks = g.integers(0, 256, size=(2, 7, 3, 16), dtype=np.uint8)  # [E, rows, G, 16]: every code occurs
    scales = g.integers(100, 151, size=(2, 7, 3), dtype=np.uint8)
    out = dequant(blocks, scales)  # [E, 96, 7]
    save_file({"blocks": torch.from_numpy(blocks), "scales": torch.from_numpy(scales),
               "dequantized": out.contiguous()}, str(path),
              metadata={"generator": "scripts/gen_oracle_gptoss.py",
                        "what": "transformers.integrations.mxfp4.convert_moe_packed_tensors(blocks, scales, "
                                "dtype=float32): [E, G*32, rows]"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    ap.add_argument("--out", type=Path, default=root / "oracle")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "safetensors": safetensors.__version__, "numpy": np.__version__}
    print("versions:", versions)

    model = build_model()
    cfg = model.config
    d32, d16, dq = args.out / f"{ARCH}_f32", args.out / f"{ARCH}_bf16", args.out / f"{ARCH}_mxfp4"
    ref_state = {k: v.clone() for k, v in model.state_dict().items()}
    base.save_model(model, d32, torch.float32)
    base.save_model(model, d16, torch.bfloat16)
    model = build_model()  # save_model(bf16) converted it in place
    m32, m16f, m16 = base.load(d32, torch.float32), base.load(d16, torch.float32), base.load(d16, torch.bfloat16)
    for k, v in m32.state_dict().items():
        assert torch.equal(v, ref_state[k]), f"f32 round trip changed {k}"
    for k, v in m16f.state_dict().items():
        assert torch.equal(v, ref_state[k].to(torch.bfloat16).float()), f"bf16 round trip changed {k}"

    # The MXFP4 model: experts rounded, the rest as the bf16 checkpoint holds it.
    mq = build_model()
    with torch.no_grad():
        for k, p in mq.state_dict().items():
            p.copy_(p.to(torch.bfloat16).float())
    packed = to_mxfp4(mq)
    save_mxfp4(mq, packed, dq)

    def meta(name, wdt, attempts):
        return {"arch": ARCH, "weights_dtype": wdt, "seq_lens": list(SEQ_LENS),
                "num_hidden_layers": cfg.num_hidden_layers, "dense_layers": [],
                "token_attempts": {str(k): v for k, v in attempts.items()},
                "generator": "scripts/gen_oracle_gptoss.py", "versions": versions, "fixture": name}

    picked = pick_tokens(ARCH, [m32, m16f], [(m16f, m16)], cfg.vocab_size)
    refs32, refs16, stats = {}, {}, []
    clamp = [0, 0]
    for L, (tokens, _, (r32, r16f)) in picked.items():
        forward(m32, tokens, clamp)
        refs32.update(refs_of(tokens, r32))
        refs16.update(refs_of(tokens, r16f))
        r16 = forward(m16, tokens)
        refs16[f"logits_bf16.{L}"] = r16[0].contiguous()
        stats.append((L, (r16[0] - r16f[0]).abs().max().item(), decode_matches(m32, tokens, r32[0])))
    attempts = {L: a for L, (_, a, _) in picked.items()}
    write_refs(d32, refs32, meta(d32.name, "float32", attempts))
    write_refs(d16, refs16, meta(d16.name, "bfloat16", attempts))
    frac = clamp[0] / clamp[1]
    print(f"clamped SwiGLU: {clamp[0]} of {clamp[1]} gate/up values beyond the limit ({100 * frac:.1f}%)")
    assert 0.005 < frac < 0.3, "the fixture should exercise the clamp, but not mostly"

    pq = pick_tokens(ARCH + "_mxfp4", [mq], [], cfg.vocab_size)
    refsq = {}
    for L, (tokens, _, (rq,)) in pq.items():
        refsq.update(refs_of(tokens, rq))
    write_refs(dq, refsq, meta(dq.name, "mxfp4 experts, bf16 rest", {L: a for L, (_, a, _) in pq.items()}))

    dequant_fixture(args.out.parent / "gpt_oss_mxfp4_dequant.safetensors")

    for L, mx, dec in stats:
        print(f"  L={L:3d}: |logits_bf16 - logits| max {mx:.4f}; transformers' own cached decode differs by {dec:.2e}")
    for d in (d32, d16, dq):
        files = sorted(d.iterdir())
        total = sum(f.stat().st_size for f in files)
        print(f"  {d.name:22s} {total / 1e6:6.3f} MB")
        assert total < 2_000_000, f"{d} is larger than 2 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
