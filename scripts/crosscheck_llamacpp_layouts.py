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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", type=Path, default=FIXTURES / "llamacpp_crosscheck.json")
    args = ap.parse_args()
    results = {}
    for d in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
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
