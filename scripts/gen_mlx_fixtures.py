#!/usr/bin/env python3
"""Generate the MLX-quantized fixtures for moeflux's MLX loading tests.

How to run (from the repository root; Linux CPU wheels of mlx exist):

    python -m venv .venv && .venv/bin/pip install -r scripts/requirements-oracle.txt
    .venv/bin/pip install -r scripts/requirements-mlx.txt
    .venv/bin/python scripts/gen_mlx_fixtures.py             # writes tests/fixtures/mlx/
    .venv/bin/python scripts/gen_mlx_fixtures.py --out DIR   # writes somewhere else

No network access is needed. For each case below a tiny random model is made
with transformers (the re-initialisation of gen_oracle_fixtures.py), saved as
a Hugging Face checkpoint in a temporary directory, and converted with
mlx-lm's own code, the steps of `mlx_lm.convert --quantize` without the
tokenizer: mlx_lm.utils.load_model (whose sanitize() stacks the experts into
switch_mlp tensors), the cast to the case's dtype, quantize_model (with the
model's own quant_predicate, e.g. Qwen3-MoE's 8-bit router), save_model and
save_config. So the directories are exactly what mlx-community publishes,
minus tokenizer files.

Reference logits (reference.safetensors):
  tokens.L   int32   [L]          token ids
  logits.L   float32 [L, vocab]   transformers (eager, float32) on the
                                  dequantized weights: every MLX matrix
                                  dequantized as scale * q + bias in float32
                                  (the formula of src/quant/mlx_affine.h),
                                  experts unstacked into the Hugging Face names.
                                  Exact math for the quantized model.
  logits_mlx.L float32 [L, vocab] (float32 cases only) mlx-lm's own forward
                                  pass on the converted directory, on the CPU.
  metadata "mlx_fixture": JSON with the case, versions and the measured
  max |logits_mlx - logits| / max |logits|.
Token sequences are re-drawn until every position has top1 - top2 > 1e-3 of
the logit range and every router a gap > 1e-3 at its top-k boundary, so an
engine that computes the same function in another order picks the same
experts and argmax.

Shapes (all cases): hidden 64, 4 query heads of head_dim 16, 2 KV heads,
vocab 160, 8 experts, top-2, expert ffn 64; every matrix dimension a
multiple of 64 so that mlx-lm quantizes all of them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM, MixtralConfig, OlmoeConfig, Qwen2MoeConfig, Qwen3MoeConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_oracle_fixtures as oracle  # noqa: E402  (reinit, stable_seed, forward, margins)

import mlx.core as mx  # noqa: E402
import mlx_lm  # noqa: E402
from mlx.utils import tree_map  # noqa: E402
from mlx_lm.utils import load_model, quantize_model, save_config, save_model  # noqa: E402

SEQ_LENS = (1, 17, 33)
VOCAB = 160
HIDDEN = 64
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    num_attention_heads=4,
    num_key_value_heads=2,
    num_experts_per_tok=2,
    max_position_embeddings=256,
    hidden_act="silu",
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
    use_cache=True,
)
ARCHS = {
    # qwen3_moe: layer 1 dense (mlp_only_layers), so a quantized dense MLP too.
    "qwen3_moe": (Qwen3MoeConfig, dict(num_hidden_layers=3, head_dim=16, num_experts=8, moe_intermediate_size=64,
                                       intermediate_size=128, norm_topk_prob=True, decoder_sparse_step=1,
                                       mlp_only_layers=[1], rope_theta=1e6, rms_norm_eps=1e-6, attention_bias=False,
                                       use_sliding_window=False, tie_word_embeddings=False)),
    # qwen2_moe: shared expert with its [1, hidden] sigmoid gate, q/k/v biases.
    "qwen2_moe": (Qwen2MoeConfig, dict(num_hidden_layers=2, num_experts=8, moe_intermediate_size=64,
                                       shared_expert_intermediate_size=64, intermediate_size=128,
                                       norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[],
                                       rope_theta=10000.0, rms_norm_eps=1e-6, qkv_bias=True,
                                       use_sliding_window=False, tie_word_embeddings=False)),
    "mixtral": (MixtralConfig, dict(num_hidden_layers=2, num_local_experts=8, intermediate_size=64,
                                    sliding_window=None, rope_theta=1e6, rms_norm_eps=1e-5, router_jitter_noise=0.0,
                                    tie_word_embeddings=False)),
    # olmoe: tied embeddings, so the quantized embedding table is also the lm_head.
    "olmoe": (OlmoeConfig, dict(num_hidden_layers=2, num_experts=8, intermediate_size=64, norm_topk_prob=False,
                                clip_qkv=2.0, rope_theta=10000.0, rms_norm_eps=1e-5, attention_bias=False,
                                tie_word_embeddings=True)),
}


def lm_head_in_float(path, module):
    """A mixed checkpoint: lm_head left unquantized (mlx-lm then writes no override)."""
    return path != "lm_head"


# name, arch, bits, group size, dtype of scales/biases and float tensors, quant predicate (None: the model's own)
CASES = [
    ("qwen3_moe_q4", "qwen3_moe", 4, 64, "bfloat16", None),
    ("qwen2_moe_q4", "qwen2_moe", 4, 64, "bfloat16", None),
    ("mixtral_q4", "mixtral", 4, 64, "bfloat16", lm_head_in_float),
    ("olmoe_q4", "olmoe", 4, 64, "bfloat16", None),
    ("qwen3_moe_q3g32_f32", "qwen3_moe", 3, 32, "float32", None),
]


def build_hf(arch: str, dtype: str, d: Path):
    cls, kw = ARCHS[arch]
    config = cls(**COMMON, **kw)
    torch.manual_seed(oracle.stable_seed("mlx", arch, "construct"))
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    oracle.reinit(model, oracle.stable_seed("mlx", arch, "weights"))
    if dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        if (d / extra).exists():
            (d / extra).unlink()


def convert(hf_dir: Path, out: Path, bits: int, group: int, dtype: str, predicate) -> dict:
    """mlx_lm.convert's steps (see the module docstring); returns the config written."""
    model, config = load_model(hf_dir, lazy=False)
    target = getattr(mx, dtype)
    model.update(tree_map(lambda v: v.astype(target) if mx.issubdtype(v.dtype, mx.floating) else v, model.parameters()))
    config["torch_dtype"] = dtype
    model, config = quantize_model(model, config, group, bits, quant_predicate=predicate)
    out.mkdir(parents=True)
    save_model(out, model)
    save_config(config, out / "config.json")
    return config


def unpack(wq: np.ndarray, bits: int, cols: int) -> np.ndarray:
    """q values of uint32-packed MLX rows: one little-endian bit stream per row."""
    lead = wq.shape[:-1]
    raw = np.ascontiguousarray(wq.astype("<u4")).view(np.uint8).reshape(-1, wq.shape[-1] * 4)
    bitstream = np.unpackbits(raw, axis=-1, bitorder="little")
    q = bitstream.reshape(raw.shape[0], cols, bits)
    vals = (q.astype(np.uint32) << np.arange(bits, dtype=np.uint32)).sum(-1, dtype=np.uint32)
    return vals.reshape(*lead, cols)


def as_f32(t) -> np.ndarray:
    """An mx array (any float dtype) as float32 numpy."""
    return np.array(t.astype(mx.float32)) if isinstance(t, mx.array) else t.astype(np.float32)


def dequantized_state(out: Path, config: dict, arch: str) -> dict[str, torch.Tensor]:
    """The converted directory's weights as a transformers float32 state dict."""
    raw = {}
    for f in sorted(out.glob("*.safetensors")):
        raw.update(mx.load(str(f)))
    q = config["quantization"]
    state = {}
    for name, w in raw.items():
        if name.endswith((".scales", ".biases")):
            continue
        m = name[: -len(".weight")] if name.endswith(".weight") else None
        if m is not None and f"{m}.scales" in raw:
            p = q.get(m, q)
            bits, gs = p["bits"], p["group_size"]
            cols = w.shape[-1] * 32 // bits
            qv = unpack(np.array(w), bits, cols).astype(np.float32)
            s = np.repeat(as_f32(raw[f"{m}.scales"]), gs, axis=-1)
            b = np.repeat(as_f32(raw[f"{m}.biases"]), gs, axis=-1)
            wf = (s * qv).astype(np.float32) + b  # two f32 roundings, as the engine
        else:
            wf = as_f32(w)
        if ".switch_mlp." in name:
            pre, post = name.split(".switch_mlp.")
            proj = post.split(".")[0]
            hf = {"gate_proj": "w1", "down_proj": "w2", "up_proj": "w3"}[proj] if arch == "mixtral" else proj
            for e in range(wf.shape[0]):
                state[f"{pre}.experts.{e}.{hf}.weight"] = torch.from_numpy(np.ascontiguousarray(wf[e]))
        else:
            state[name] = torch.from_numpy(np.ascontiguousarray(wf))
    return state


def mlx_logits(out: Path, tokens: np.ndarray) -> np.ndarray:
    model, _ = load_model(out)
    return np.array(model(mx.array(tokens[None].astype(np.int32)))[0].astype(mx.float32))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "mlx")
    ap.add_argument("--case", action="append", choices=[c[0] for c in CASES], help="only these (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    versions = {
        "torch": torch.__version__, "transformers": transformers.__version__, "safetensors": safetensors.__version__,
        "numpy": np.__version__, "mlx": mx.__version__, "mlx_lm": mlx_lm.__version__,
    }
    print("versions:", versions)
    for name, arch, bits, group, dtype, predicate in CASES:
        if args.case and name not in args.case:
            continue
        out = args.out / name
        if out.exists():
            shutil.rmtree(out)
        with tempfile.TemporaryDirectory() as tmp:
            hf_dir = Path(tmp) / "hf"
            build_hf(arch, dtype, hf_dir)
            config = convert(hf_dir, out, bits, group, dtype, predicate)
            hf_config = transformers.AutoConfig.from_pretrained(hf_dir)
        model = AutoModelForCausalLM.from_config(hf_config, attn_implementation="eager", dtype=torch.float32)
        state = dequantized_state(out, config, arch)
        if hf_config.tie_word_embeddings:
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
        model.load_state_dict(state, strict=True)
        model.eval()
        k = hf_config.num_experts_per_tok
        refs, meta_attempts, mlx_err = {}, {}, 0.0
        for L in SEQ_LENS:
            for attempt in range(1000):
                g = torch.Generator().manual_seed(oracle.stable_seed("mlx", name, "tokens", L, attempt))
                tokens = torch.randint(0, VOCAB, (L,), generator=g, dtype=torch.int64).to(torch.int32)
                logits, _, _, router = oracle.forward(model, tokens)
                rel, gap = oracle.margins(logits, router, k)
                if rel > oracle.LOGIT_MARGIN_REL and gap > oracle.ROUTER_GAP_MIN:
                    break
            else:
                raise RuntimeError(f"{name} L={L}: no token sequence without near ties")
            meta_attempts[L] = attempt
            refs[f"tokens.{L}"] = tokens.numpy()
            refs[f"logits.{L}"] = logits.numpy()
            if dtype == "float32":
                lm = mlx_logits(out, tokens.numpy())
                refs[f"logits_mlx.{L}"] = lm
                mlx_err = max(mlx_err, float(np.abs(lm - logits.numpy()).max() / np.abs(logits.numpy()).max()))
        meta = {"case": name, "arch": arch, "bits": bits, "group_size": group, "dtype": dtype,
                "seq_lens": list(SEQ_LENS), "token_attempts": meta_attempts, "versions": versions,
                "mlx_forward_max_rel_diff": mlx_err if dtype == "float32" else None}
        save_file({k: np.ascontiguousarray(v) for k, v in refs.items()}, str(out / "reference.safetensors"),
                  metadata={"mlx_fixture": json.dumps(meta, sort_keys=True)})
        size = sum(f.stat().st_size for f in out.iterdir())
        print(f"{name}: {size} bytes, attempts {meta_attempts}, quantization {config['quantization']}"
              + (f", mlx-lm forward vs reference {mlx_err:.2e} of the logit scale" if dtype == "float32" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
