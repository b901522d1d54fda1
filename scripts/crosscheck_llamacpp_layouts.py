#!/usr/bin/env python3
"""llama.cpp on the GGUF files its own converter wrote for qwen3next,
qwen35moe and deepseek2 (tests/fixtures/gguf_llamacpp): its logits against
transformers' (reference.safetensors), which moeflux matches within 1e-4 of
the logit scale (tests/model/gguf_llamacpp_test.cpp). Prints, per file, the
max |llama.cpp - transformers| relative to the logit scale and the top-1
agreement, and writes them to --out (JSON).

Needs scripts/llamacpp_logits/llamacpp_logits.cpp built against libllama
(its top comment says how), safetensors and numpy:

    python scripts/crosscheck_llamacpp_layouts.py --bin /tmp/llamacpp_logits
"""
import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "gguf_llamacpp"


def qwen3_next_equal_head_dims(tmp: Path, llama_src: Path) -> Path:
    """llama.cpp's qwen3next loader takes the value head dim equal to the key
    head dim (ssm_d_state), which the committed fixture's 12 / 10 are not:
    the same model shape with both 12, built and converted here."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from safetensors.torch import save_file
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gen_gguf_llamacpp_fixtures import hf_logits, llama_convert

    cfg = AutoConfig.from_pretrained(ROOT / "tests" / "fixtures" / "oracle" / "qwen3_next_f32")
    cfg.mlp_only_layers = []
    cfg.linear_value_head_dim = 12
    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.normal_(0.0, 0.1)  # zero-centred
            elif n.endswith("A_log"):
                p.uniform_(0.0, 2.0)
            else:
                p.normal_(0.0, 1.0 / p.shape[-1] ** 0.5)
    hf = tmp / "qwen3_next_hd12"
    model.save_pretrained(hf, safe_serialization=True)
    out = tmp / "qwen3_next_hd12_gguf"
    out.mkdir()
    llama_convert(llama_src, hf, out / "model.gguf", ["--no-mtp"])
    tokens = torch.tensor(load_file(str(FIXTURES / "qwen3_next" / "reference.safetensors"))["tokens.17"])
    logits = hf_logits(hf, tokens)
    from safetensors.torch import save_file as save_t
    save_t({"tokens.17": tokens.contiguous(), "logits.17": logits.contiguous()}, str(out / "reference.safetensors"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--llama-src", type=Path, default=Path("/work/llama-src"))
    ap.add_argument("--out", type=Path, default=FIXTURES / "llamacpp_crosscheck.json")
    args = ap.parse_args()
    results = {}
    tmpdir = tempfile.TemporaryDirectory()
    dirs = sorted(p for p in FIXTURES.iterdir() if p.is_dir())
    dirs.append(qwen3_next_equal_head_dims(Path(tmpdir.name), args.llama_src))
    for d in dirs:
        ref = load_file(str(d / "reference.safetensors"))
        tokens, want = ref["tokens.17"], ref["logits.17"]
        with tempfile.NamedTemporaryFile(suffix=".f32") as f:
            r = subprocess.run([args.bin, str(d / "model.gguf"), f.name] + [str(int(t)) for t in tokens],
                               capture_output=True, text=True)
            if r.returncode != 0:
                results[d.name] = {"ran": False, "why": (r.stderr.strip().splitlines() or ["?"])[-1]}
                print(d.name, "llama.cpp failed:", results[d.name]["why"])
                continue
            got = np.fromfile(f.name, dtype="<f4").reshape(want.shape)
        scale = float(np.abs(want).max())
        rel = float(np.abs(got - want).max()) / scale
        top1 = float((got.argmax(-1) == want.argmax(-1)).mean())
        results[d.name] = {"ran": True, "max_abs_rel_to_scale": rel, "top1_agreement": top1}
        print(f"{d.name}: max |llama.cpp - transformers| = {rel:.2e} of the logit scale, top-1 agreement {top1:.3f}")
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
