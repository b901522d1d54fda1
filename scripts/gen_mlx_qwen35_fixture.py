#!/usr/bin/env python3
"""An MLX Qwen3.5-MoE fixture as mlx-community publishes them (the seed's own
input, Qwen3.5/3.6 4-bit): tests/fixtures/mlx/qwen3_5_moe_q4.

A tiny qwen3_5_moe (the multimodal config with text_config; hidden 64, 4
layers: DeltaNet, gated attention, DeltaNet, DeltaNet; 2 key heads / 4 value
heads of 16; 8 experts, top-2, a shared expert) is built with mlx-lm's own
model class (mlx_lm.models.qwen3_5_moe), given random weights from a fixed
seed, quantized by mlx-lm's quantize_model (4-bit, group 32, with the model's
own quant_predicate: the router and shared-expert gate at 8 bits, group 64)
and written by save_model / save_config: the "language_model." names,
experts stacked as switch_mlp, conv1d as [C, K, 1], norms stored as mlx-lm
uses them (1 + w after its sanitize), no vision tower or MTP weights.

reference.safetensors: tokens.17 and logits_mlx.17, mlx-lm's forward pass
on the quantized model (float32, CPU).

    /work/venv-forms/bin/python scripts/gen_mlx_qwen35_fixture.py   # mlx[cpu]==0.32.4, mlx-lm==0.32.2
"""
import json
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.models import qwen3_5_moe
from mlx_lm.utils import quantize_model, save_config, save_model
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "mlx" / "qwen3_5_moe_q4"
SEED = 20261203

TEXT = {
    "model_type": "qwen3_5_moe_text",
    "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 16, "vocab_size": 160, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
    # mlx-lm places the full-attention layers by full_attention_interval (not layer_types): consistent.
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
    "full_attention_interval": 4,
    "linear_conv_kernel_dim": 4, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
    "linear_num_key_heads": 2, "linear_num_value_heads": 4,
    "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
    "shared_expert_intermediate_size": 64, "attention_bias": False, "tie_word_embeddings": False,
    "hidden_act": "silu", "attn_output_gate": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25,
                        "mrope_section": [1, 1, 0], "mrope_interleaved": True},
}
CONFIG = {"architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
          "text_config": TEXT, "tie_word_embeddings": False}


def main():
    mx.random.seed(SEED)
    model = qwen3_5_moe.Model(qwen3_5_moe.ModelArgs.from_dict(CONFIG))
    new = []
    for k, v in tree_flatten(model.parameters()):
        if k.endswith("A_log"):
            x = mx.log(mx.random.uniform(1.0, 8.0, v.shape))
        elif k.endswith("dt_bias"):
            x = mx.random.uniform(-1.0, 1.0, v.shape)
        elif k.endswith("norm.weight") or k.endswith("layernorm.weight"):
            x = 1.0 + 0.1 * mx.random.normal(v.shape)
        elif "conv1d" in k:
            x = 0.3 * mx.random.normal(v.shape)
        else:
            fan_in = v.shape[-1]
            x = mx.random.normal(v.shape) * (1.5 / np.sqrt(fan_in))
        new.append((k, x.astype(mx.float32)))
    model.update(tree_unflatten(new))
    config = json.loads(json.dumps(CONFIG))
    model, config = quantize_model(model, config, 32, 4, quant_predicate=model.quant_predicate)
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
