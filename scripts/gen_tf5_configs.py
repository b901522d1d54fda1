#!/usr/bin/env python3
"""Writes, next to each oracle fixture's weights, the config.json that
transformers 5 writes for the same model: config.tf5.json.

The oracle fixtures (scripts/gen_oracle_fixtures.py) were saved by
transformers 4.57. transformers 5 renames keys on save (attribute_map
aliases such as qwen3_moe's num_experts -> num_local_experts, rope_theta /
rope_scaling -> rope_parameters {rope_type, rope_theta, ...}, torch_dtype ->
dtype) and adds new ones (qwen2_moe's qkv_bias and layer_types). Loading the
4.x config with transformers 5 and saving it again is exactly what a user
re-saving a checkpoint does, so the result is what moeflux must read.

Only config classes are needed, not torch:
    python3 -m venv /tmp/tf5 && /tmp/tf5/bin/pip install -r scripts/requirements-tf5.txt
    /tmp/tf5/bin/python scripts/gen_tf5_configs.py
Deterministic: the output depends only on the fixture configs and the
transformers version (recorded in each file's transformers_version).
"""
import json
import os
import sys
import tempfile

import transformers
from transformers import AutoConfig

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "oracle")


def main():
    if int(transformers.__version__.split(".")[0]) < 5:
        sys.exit(f"needs transformers >= 5, found {transformers.__version__}")
    for name in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, name)
        if not os.path.isfile(os.path.join(src, "config.json")):
            continue
        cfg = AutoConfig.from_pretrained(src)
        with tempfile.TemporaryDirectory() as tmp:
            cfg.save_pretrained(tmp)
            with open(os.path.join(tmp, "config.json")) as f:
                text = f.read()
        json.loads(text)  # well-formed
        with open(os.path.join(src, "config.tf5.json"), "w") as f:
            f.write(text)
        print(f"{name}/config.tf5.json")


if __name__ == "__main__":
    main()
