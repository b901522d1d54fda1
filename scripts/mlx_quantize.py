#!/usr/bin/env python3
"""Quantize a Hugging Face checkpoint directory to MLX affine with mlx-lm.

The same steps as `mlx_lm.convert -q` (load, cast, quantize_model, save), on
the CPU build of mlx from PyPI, for benchmark models made by `moeflux synth`
(BENCHMARKS.md, MLX affine through the engine). Tokenizer and other
non-weight files are copied as they are.

    python scripts/mlx_quantize.py HF_DIR OUT_DIR --bits 4 --group-size 64
"""
import argparse
import shutil
import sys
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_map
from mlx_lm.utils import load_model, quantize_model, save_config, save_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hf_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--bits", type=int, default=4, choices=[2, 3, 4, 6, 8])
    ap.add_argument("--group-size", type=int, default=64, choices=[32, 64, 128])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    a = ap.parse_args()
    if a.out.exists():
        print(f"{a.out} exists; refusing to overwrite", file=sys.stderr)
        return 1
    model, config = load_model(a.hf_dir, lazy=False)
    target = getattr(mx, a.dtype)
    model.update(tree_map(lambda v: v.astype(target) if mx.issubdtype(v.dtype, mx.floating) else v,
                          model.parameters()))
    config["torch_dtype"] = a.dtype
    model, config = quantize_model(model, config, a.group_size, a.bits)
    a.out.mkdir(parents=True)
    save_model(a.out, model)
    save_config(config, a.out / "config.json")
    for f in a.hf_dir.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors") and f.name not in (
                "config.json", "model.safetensors.index.json"):
            shutil.copy(f, a.out / f.name)
    print(f"wrote {a.out} ({a.bits}-bit, group {a.group_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
