#!/usr/bin/env python3
"""Quantizer error of `moeflux convert` against llama.cpp's own quantizer.

For each small real-shaped model below (rows whole 256-blocks, so the K
formats apply; weights drawn from a Student-t with 5 degrees of freedom,
whose heavy tails stand in for the outliers of trained weights):
  1. write the Hugging Face directory (config.json + model.safetensors, f32);
  2. `moeflux convert --type f32` it: the source every error is measured from;
  3. quantize that F32 GGUF with llama.cpp (llama_cpp.llama_model_quantize,
     llama-cpp-python, no importance matrix) and convert the HF directory
     with `moeflux convert --type T` for T in the formats below;
  4. dequantize both with gguf-py and compare each tensor with the f32 source:
     RMSE, whether both chose the same type, whether the bytes are equal.

Prints a per-model/per-type summary (the table in BENCHMARKS.md) and, with
--per-tensor, every tensor. With --fixtures DIR it writes what llama.cpp
chose for each tensor as DIR/llamacpp_types_<model>_<type>.json (with the
config), which tests/convert/type_mix_test.cpp compares our plan with.

    /work/pyenv/bin/python scripts/compare_quant_llamacpp.py --moeflux build/moeflux \\
        [--fixtures tests/fixtures/convert] [--per-tensor]
Needs: gguf==0.19.0, numpy, safetensors, llama-cpp-python (scripts/requirements-quant.txt + llama-cpp-python).
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import save_file

import gguf
import llama_cpp

TYPES = {  # our --type -> llama.h LLAMA_FTYPE_*
    "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q5_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "q6_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
    "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "mxfp4": llama_cpp.LLAMA_FTYPE_MOSTLY_MXFP4_MOE,
}

COMMON = {"max_position_embeddings": 4096, "hidden_act": "silu", "tie_word_embeddings": False,
          "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
MODELS = {
    # 16 experts (not 8: llama.cpp treats 8-expert models specially, the mixtral model covers that)
    "qwen3moe": dict(COMMON, model_type="qwen3_moe", vocab_size=1024, hidden_size=256, num_hidden_layers=8,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=768,
                     moe_intermediate_size=256, num_experts=16, num_experts_per_tok=4, norm_topk_prob=True,
                     rope_theta=1000000.0, rms_norm_eps=1e-6),
    "mixtral": dict(COMMON, model_type="mixtral", vocab_size=1024, hidden_size=256, num_hidden_layers=8,
                    num_attention_heads=4, num_key_value_heads=2, intermediate_size=512, num_local_experts=8,
                    num_experts_per_tok=2, rope_theta=1000000.0, rms_norm_eps=1e-5),
    "qwen2moe": dict(COMMON, model_type="qwen2_moe", vocab_size=1024, hidden_size=256, num_hidden_layers=8,
                     num_attention_heads=4, num_key_value_heads=4, intermediate_size=768,
                     moe_intermediate_size=256, shared_expert_intermediate_size=512, num_experts=12,
                     num_experts_per_tok=4, norm_topk_prob=False, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "olmoe": dict(COMMON, model_type="olmoe", vocab_size=1024, hidden_size=256, num_hidden_layers=8,
                  num_attention_heads=4, num_key_value_heads=4, intermediate_size=256, num_experts=16,
                  num_experts_per_tok=4, norm_topk_prob=False, rope_theta=10000.0, rms_norm_eps=1e-5),
    # Rows of 384 and 192: whole 32-blocks, not 256-blocks (the K formats fall back); tied embeddings.
    "qwen3moe-384-tied": dict(COMMON, model_type="qwen3_moe", vocab_size=512, hidden_size=384, num_hidden_layers=4,
                              num_attention_heads=6, num_key_value_heads=2, head_dim=64, intermediate_size=768,
                              moe_intermediate_size=192, num_experts=16, num_experts_per_tok=4, norm_topk_prob=True,
                              rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
}


def hf_tensors(cfg):
    """Hugging Face names and shapes, as moeflux's model_tensors() lists them."""
    D, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", D // H)
    mt = cfg["model_type"]
    E = cfg.get("num_experts", cfg.get("num_local_experts"))
    F = cfg.get("moe_intermediate_size", cfg["intermediate_size"])
    out = [("model.embed_tokens.weight", (cfg["vocab_size"], D))]
    for l in range(L):
        p = f"model.layers.{l}."
        out.append((p + "input_layernorm.weight", (D,)))
        out += [(p + "self_attn.q_proj.weight", (H * hd, D)), (p + "self_attn.k_proj.weight", (KV * hd, D)),
                (p + "self_attn.v_proj.weight", (KV * hd, D)), (p + "self_attn.o_proj.weight", (D, H * hd))]
        if mt == "qwen2_moe":
            out += [(p + "self_attn.q_proj.bias", (H * hd,)), (p + "self_attn.k_proj.bias", (KV * hd,)),
                    (p + "self_attn.v_proj.bias", (KV * hd,))]
        if mt == "qwen3_moe":
            out += [(p + "self_attn.q_norm.weight", (hd,)), (p + "self_attn.k_norm.weight", (hd,))]
        if mt == "olmoe":
            out += [(p + "self_attn.q_norm.weight", (H * hd,)), (p + "self_attn.k_norm.weight", (KV * hd,))]
        out.append((p + "post_attention_layernorm.weight", (D,)))
        moe = p + ("block_sparse_moe." if mt == "mixtral" else "mlp.")
        out.append((moe + "gate.weight", (E, D)))
        for e in range(E):
            if mt == "mixtral":
                names = ("w1", "w3", "w2")
            else:
                names = ("gate_proj", "up_proj", "down_proj")
            out += [(f"{moe}experts.{e}.{names[0]}.weight", (F, D)), (f"{moe}experts.{e}.{names[1]}.weight", (F, D)),
                    (f"{moe}experts.{e}.{names[2]}.weight", (D, F))]
        if mt == "qwen2_moe":
            S = cfg["shared_expert_intermediate_size"]
            out += [(moe + "shared_expert.gate_proj.weight", (S, D)), (moe + "shared_expert.up_proj.weight", (S, D)),
                    (moe + "shared_expert.down_proj.weight", (D, S)), (moe + "shared_expert_gate.weight", (1, D))]
    out.append(("model.norm.weight", (D,)))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", (cfg["vocab_size"], D)))
    return out


def write_hf(d, cfg, seed):
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in hf_tensors(cfg):
        if "norm" in name:
            tensors[name] = (1 + 0.05 * rng.standard_normal(shape)).astype(np.float32)
        else:
            tensors[name] = (rng.standard_t(5, shape) / np.sqrt(shape[-1] * 5 / 3)).astype(np.float32)
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def run(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return time.perf_counter() - t0


def llama_quantize(src, dst, ftype):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = os.cpu_count() or 1
    t0 = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    if rc != 0:
        sys.exit(f"llama_model_quantize({src}, ftype {ftype}) returned {rc}")
    return time.perf_counter() - t0


def load(path):
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        qt = gguf.GGMLQuantizationType(t.tensor_type)
        vals = t.data if qt == gguf.GGMLQuantizationType.F32 else gguf.quants.dequantize(t.data, qt)
        out[t.name] = (qt.name, np.asarray(vals, dtype=np.float32).reshape(-1), bytes(np.asarray(t.data).tobytes()))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moeflux", required=True, help="path of the moeflux binary")
    ap.add_argument("--fixtures", help="write llamacpp_types_<model>_<type>.json here")
    ap.add_argument("--per-tensor", action="store_true")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--types", default=",".join(TYPES))
    args = ap.parse_args()

    print(f"llama-cpp-python {llama_cpp.__version__}, gguf {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}")
    print("| model | type | tensors | same type | same bytes | RMSE moeflux | RMSE llama.cpp | moeflux / llama.cpp "
          "| worst tensor ratio | moeflux s | llama.cpp s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for mi, mname in enumerate(args.models.split(",")):
            cfg = MODELS[mname]
            hf = os.path.join(tmp, mname)
            os.makedirs(hf)
            write_hf(hf, cfg, args.seed + mi)
            f32 = os.path.join(tmp, f"{mname}.f32.gguf")
            run([args.moeflux, "convert", hf, "-o", f32, "--type", "f32", "--no-tokenizer", "-q"])
            src = load(f32)
            for tname in args.types.split(","):
                ours_p = os.path.join(tmp, f"{mname}.{tname}.moeflux.gguf")
                theirs_p = os.path.join(tmp, f"{mname}.{tname}.llamacpp.gguf")
                t_ours = run([args.moeflux, "convert", hf, "-o", ours_p, "--type", tname, "--no-tokenizer", "-q"])
                t_theirs = llama_quantize(f32, theirs_p, TYPES[tname])
                ours, theirs = load(ours_p), load(theirs_p)
                assert set(ours) == set(theirs) == set(src), "tensor sets differ"
                se_o = se_t = 0.0
                n_el = same_type = same_bytes = 0
                worst = (0.0, "")
                for name, (_, x, _) in src.items():
                    to, yo, bo = ours[name]
                    tt, yt, bt = theirs[name]
                    eo, et = float(np.sum((yo - x) ** 2)), float(np.sum((yt - x) ** 2))
                    se_o, se_t, n_el = se_o + eo, se_t + et, n_el + x.size
                    same_type += to == tt
                    same_bytes += bo == bt
                    ratio = np.sqrt(eo / et) if et > 0 else (1.0 if eo == 0 else float("inf"))
                    if ratio > worst[0]:
                        worst = (ratio, name)
                    if args.per_tensor:
                        print(f"  {mname} {tname} {name}: {to}/{tt} rmse {np.sqrt(eo / x.size):.3e} / "
                              f"{np.sqrt(et / x.size):.3e} bytes {'=' if bo == bt else '!='}")
                ro, rt = np.sqrt(se_o / n_el), np.sqrt(se_t / n_el)
                print(f"| {mname} | {tname} | {len(src)} | {same_type} | {same_bytes} | {ro:.4e} | {rt:.4e} | "
                      f"{ro / rt:.4f} | {worst[0]:.4f} ({worst[1]}) | {t_ours:.2f} | {t_theirs:.2f} |")
                if args.fixtures:
                    fx = {"generator": "scripts/compare_quant_llamacpp.py",
                          "llama_cpp_python": llama_cpp.__version__, "model": mname, "type": tname,
                          "config": cfg, "tensors": {n: theirs[n][0] for n in sorted(theirs)}}
                    with open(os.path.join(args.fixtures, f"llamacpp_types_{mname}_{tname}.json"), "w") as f:
                        json.dump(fx, f, indent=1, sort_keys=True)
                        f.write("\n")


if __name__ == "__main__":
    main()
