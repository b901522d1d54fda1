#!/usr/bin/env python3
"""An FP8 DeepSeek-V3 oracle fixture: tests/fixtures/oracle/deepseek_v3_fp8.

The weights of tests/fixtures/oracle/deepseek_v3_f32, with every projection
(q_a/q_b/kv_a/kv_b/o_proj, the dense, shared and routed experts' gate/up/
down) stored as DeepSeek-V3's original checkpoints store them: e4m3 codes
(F8_E4M3) and beside each a `weight_scale_inv` (F32) with one factor per
block, block = amax / 448 (DeepSeek's act_quant rule for weights). The
block is 32 instead of DeepSeek's 128 so that the 72-wide tiny matrices
have partial blocks at the edges (the scale shape is the ceiling division).
Embeddings, lm_head, norms, the router and its correction bias stay F32.

The reference is transformers 4.57.1 on the dequantized weights (code as
float times its block's scale in f32, DeepSeek's weight_dequant), i.e.
exactly the function an engine computing on the FP8 weights computes:
tokens.L, logits.L, hidden.L.i for L in {1, 17, 70}, the oracle's tokens.

    /work/venv-forms/bin/python scripts/gen_oracle_deepseek_fp8.py
"""
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests" / "fixtures" / "oracle" / "deepseek_v3_f32"
OUT = ROOT / "tests" / "fixtures" / "oracle" / "deepseek_v3_fp8"
BLOCK = 32
QUANTIZED = ("q_a_proj.weight", "q_b_proj.weight", "kv_a_proj_with_mqa.weight", "kv_b_proj.weight", "o_proj.weight",
             "gate_proj.weight", "up_proj.weight", "down_proj.weight")


def quantize(w: torch.Tensor):
    R, C = w.shape
    br, bc = -(-R // BLOCK), -(-C // BLOCK)
    scale = torch.empty(br, bc, dtype=torch.float32)
    q = torch.empty(R, C, dtype=torch.float8_e4m3fn)
    for i in range(br):
        for j in range(bc):
            blk = w[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK]
            s = blk.abs().max().item() / 448.0 or 1.0
            scale[i, j] = s
            q[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK] = (blk / s).to(torch.float8_e4m3fn)
    full = scale.repeat_interleave(BLOCK, 0)[:R].repeat_interleave(BLOCK, 1)[:, :C]
    return q, scale, q.float() * full


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from transformers import AutoModelForCausalLM

    OUT.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(SRC / "model.safetensors"))
    stored, dequant = {}, {}
    for name, w in weights.items():
        if name.endswith(QUANTIZED):
            q, s, d = quantize(w.float())
            stored[name], stored[name + "_scale_inv"], dequant[name] = q, s, d
        else:
            stored[name] = dequant[name] = w
    save_file(dict(sorted(stored.items())), str(OUT / "model.safetensors"), metadata={"format": "pt"})

    cfg = json.loads((SRC / "config.json").read_text())
    cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                  "weight_block_size": [BLOCK, BLOCK]}
    (OUT / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    # The dequantized weights as a plain f32 checkpoint (from_pretrained maps its per-expert names).
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        shutil.copy(SRC / "config.json", Path(t) / "config.json")
        save_file(dequant, str(Path(t) / "model.safetensors"), metadata={"format": "pt"})
        model = AutoModelForCausalLM.from_pretrained(t, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ref = load_file(str(SRC / "reference.safetensors"))
    out = {}
    for L in (1, 17, 70):
        tokens = ref[f"tokens.{L}"]
        with torch.no_grad():
            r = model(tokens[None].long(), output_hidden_states=True)
        out[f"tokens.{L}"] = tokens.contiguous()
        out[f"logits.{L}"] = r.logits[0].float().contiguous()
        for i, h in enumerate(r.hidden_states):
            out[f"hidden.{L}.{i}"] = h[0].float().contiguous()
        top_f32 = ref[f"logits.{L}"].argmax(-1)
        agree = (top_f32 == out[f"logits.{L}"].argmax(-1)).float().mean().item()
        print(f"L={L}: top-1 agreement with the f32 model {agree:.3f}")
    save_file(dict(sorted(out.items())), str(OUT / "reference.safetensors"),
              metadata={"oracle": json.dumps({"generator": "scripts/gen_oracle_deepseek_fp8.py", "block": BLOCK,
                                              "transformers": __import__("transformers").__version__,
                                              "torch": torch.__version__}, sort_keys=True)})
    print("wrote", OUT, sum(f.stat().st_size for f in OUT.iterdir()), "bytes")


if __name__ == "__main__":
    main()
