#!/usr/bin/env python3
"""An MLX DeepSeek-V3 fixture as mlx-lm writes it: tests/fixtures/mlx/deepseek_v3_q4.

A tiny deepseek_v3 (hidden 64, 3 layers, the first dense; 4 heads, q_lora 64,
kv_lora 64, nope 32, rope 16, v 32; 8 routed experts in 2 groups, top-2, one
shared expert; sigmoid routing with a correction bias) is built with mlx-lm's
own model class (mlx_lm.models.deepseek_v3), which keeps kv_b_proj split as
its absorbed-attention MultiLinears self_attn.embed_q ([H, kv_lora, nope],
the K part transposed) and self_attn.unembed_out ([H, v, kv_lora]), given
random weights from a fixed seed, quantized by quantize_model (4-bit, group
32) and written by save_model / save_config (experts stacked as switch_mlp).

reference.safetensors: tokens.17 and logits_mlx.17, mlx-lm's forward pass
on the quantized model (float32, CPU).

    /work/venv-forms/bin/python scripts/gen_mlx_deepseek_fixture.py   # mlx[cpu]==0.32.4, mlx-lm==0.32.2
"""
import json
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.models import deepseek_v3
from mlx_lm.utils import quantize_model, save_config, save_model
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "mlx" / "deepseek_v3_q4"
SEED = 20261204

CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "vocab_size": 160, "hidden_size": 64, "intermediate_size": 64, "moe_intermediate_size": 64,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4,
    "n_shared_experts": 1, "n_routed_experts": 8, "routed_scaling_factor": 2.5,
    "kv_lora_rank": 64, "q_lora_rank": 64, "qk_rope_head_dim": 16, "v_head_dim": 32, "qk_nope_head_dim": 32,
    "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": True, "n_group": 2, "topk_group": 1,
    "num_experts_per_tok": 2, "moe_layer_freq": 1, "first_k_dense_replace": 1, "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "rope_scaling": None, "attention_bias": False,
    "tie_word_embeddings": False, "hidden_act": "silu",
}


def main():
    mx.random.seed(SEED)
    model = deepseek_v3.Model(deepseek_v3.ModelArgs.from_dict(CONFIG))
    new = []
    for k, v in tree_flatten(model.parameters()):
        if k.endswith("norm.weight") or k.endswith("layernorm.weight"):
            x = 1.0 + 0.1 * mx.random.normal(v.shape)
        elif k.endswith("e_score_correction_bias"):
            x = 0.1 * mx.random.normal(v.shape)
        else:
            x = mx.random.normal(v.shape) * (1.5 / np.sqrt(v.shape[-1]))
        new.append((k, x.astype(mx.float32)))
    model.update(tree_unflatten(new))
    config = json.loads(json.dumps(CONFIG))
    model, config = quantize_model(model, config, 32, 4)
    OUT.mkdir(parents=True, exist_ok=True)
    save_model(OUT, model)
    save_config(config, OUT / "config.json")
    tokens = np.random.default_rng(SEED).integers(0, 160, size=17).astype(np.int32)
    logits = model(mx.array(tokens)[None])[0].astype(mx.float32)
    mx.eval(logits)
    save_file({"tokens.17": tokens, "logits_mlx.17": np.array(logits)}, str(OUT / "reference.safetensors"))
    print("wrote", OUT, sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
