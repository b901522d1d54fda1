#!/usr/bin/env python3
"""Writes tests/fixtures/gguf_arch/names.json: what gguf-py (llama.cpp's own
Python package, pinned in scripts/requirements-gguf.txt) calls the tensors
and metadata keys of the four MoE architectures moeflux converts, so that
src/model/gguf_arch.cpp is checked against llama.cpp's names instead of
against itself.

For each architecture:
  arch_name    MODEL_ARCH_NAMES[arch] ("qwen3moe", "llama", ...)
  tensors      TENSOR_NAMES of MODEL_TENSORS[arch] ("blk.{bid}.attn_q", ...)
  keys         every {arch}.* key of gguf.Keys, formatted with the arch name
  hf_to_gguf   each tensor name of the committed oracle model of that
               architecture (tests/fixtures/oracle/<hf>_f32/model.safetensors)
               mapped by gguf.get_tensor_name_map(arch, n_layers), routed
               experts first renamed to the stacked name the converter gives
               them (convert_hf_to_gguf.py: qwen/olmoe
               model.layers.L.mlp.experts.<w>.weight, Mixtral
               layers.L.feed_forward.experts.<w>.weight). A name the arch's map
               does not know (the dense MLP of a Qwen MoE layer, which
               llama.cpp does not support) is mapped with the "llama" map and
               listed in not_in_arch.

    /work/pyenv/bin/python scripts/gen_gguf_arch_fixtures.py [--out tests/fixtures/gguf_arch]
"""
import argparse
import importlib.metadata
import json
import os
import re
import struct

import gguf
from gguf.constants import MODEL_ARCH, MODEL_ARCH_NAMES, MODEL_TENSORS, TENSOR_NAMES, Keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ARCHS = {
    "qwen3_moe": MODEL_ARCH.QWEN3MOE,
    "qwen2_moe": MODEL_ARCH.QWEN2MOE,
    "mixtral": MODEL_ARCH.LLAMA,
    "olmoe": MODEL_ARCH.OLMOE,
}


def safetensors_names(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return sorted(k for k in header if k != "__metadata__")


def stacked_name(hf_arch, name):
    m = re.match(r"model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.experts\.\d+\.(\w+)\.weight$", name)
    if not m:
        return name
    layer, _, w = m.groups()
    if hf_arch == "mixtral":
        return f"layers.{layer}.feed_forward.experts.{w}.weight"
    return f"model.layers.{layer}.mlp.experts.{w}.weight"


def arch_keys(arch_name):
    keys = {}
    for group in (Keys.LLM, Keys.Attention, Keys.Rope):
        for attr, val in vars(group).items():
            if isinstance(val, str) and val.startswith("{arch}.") and val.count("{") == 1:
                keys[f"{group.__name__}.{attr}"] = val.format(arch=arch_name)
    return keys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "gguf_arch"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    out = {"gguf_version": importlib.metadata.version("gguf"), "archs": {}}
    for hf_arch, arch in ARCHS.items():
        model_dir = os.path.join(ROOT, "tests", "fixtures", "oracle", f"{hf_arch}_f32")
        with open(os.path.join(model_dir, "config.json")) as f:
            n_layers = json.load(f)["num_hidden_layers"]
        tmap = gguf.get_tensor_name_map(arch, n_layers)
        fallback = gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, n_layers)
        hf_to_gguf, not_in_arch = {}, []
        for name in safetensors_names(os.path.join(model_dir, "model.safetensors")):
            src = stacked_name(hf_arch, name)
            new = tmap.get_name(src, try_suffixes=(".weight", ".bias"))
            if new is None:
                new = fallback.get_name(src, try_suffixes=(".weight", ".bias"))
                not_in_arch.append(name)
            if new is None:
                raise SystemExit(f"gguf-py has no name for {name} ({src})")
            hf_to_gguf[name] = new
        arch_name = MODEL_ARCH_NAMES[arch]
        out["archs"][hf_arch] = {
            "arch_name": arch_name,
            "tensors": sorted(TENSOR_NAMES[t] for t in MODEL_TENSORS[arch]),
            "keys": arch_keys(arch_name),
            "hf_to_gguf": hf_to_gguf,
            "not_in_arch": not_in_arch,
        }
    out["general_keys"] = {a: v for a, v in vars(Keys.General).items() if isinstance(v, str)}
    out["tokenizer_keys"] = {a: v for a, v in vars(Keys.Tokenizer).items() if isinstance(v, str)}
    with open(os.path.join(args.out, "names.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
