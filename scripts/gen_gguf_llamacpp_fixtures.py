#!/usr/bin/env python3
"""GGUF files written by llama.cpp's own converter (convert_hf_to_gguf.py)
from tiny Hugging Face models, with transformers' logits on them, so that
tests/model/gguf_llamacpp_test.cpp checks moeflux's reading of llama.cpp's
qwen3next, qwen35moe and deepseek2 layouts against transformers (and
moeflux's own `convert` output against llama.cpp's naming).

    PYTHONPATH=/work/llama-src/gguf-py /work/venv-forms/bin/python \\
        scripts/gen_gguf_llamacpp_fixtures.py --llama-src /work/llama-src

Needs torch, transformers 4.57.1 (scripts/requirements-oracle.txt) and
llama.cpp's sources (convert_hf_to_gguf.py, conversion/, gguf-py). No
network. Writes tests/fixtures/gguf_llamacpp/<name>/:

  model.gguf             convert_hf_to_gguf.py --outtype f32 (--no-mtp for the Qwens)
  reference.safetensors  tokens.17 / logits.17 of the Hugging Face model
  source.json            the model it came from, llama.cpp's revision, versions

The models:
  deepseek_v3    tests/fixtures/oracle/deepseek_v3_f32 with the original
                 DeepSeek-V3 config.json's routing keys (scoring_func sigmoid,
                 topk_method noaux_tc) added, which llama.cpp's converter
                 needs to write expert_gating_func; and rope_scaling.mscale set
                 equal to mscale_all_dim (0.8) as in DeepSeek-V3's own config
                 (GGUF has no key for mscale: llama.cpp's graph assumes that).
                 Its logits are recomputed by transformers.
  qwen3_next     tests/fixtures/oracle/qwen3_next_f32 with layer 2 made MoE
                 (mlp_only_layers []: llama.cpp's qwen3next has no dense
                 layers): the other weights as in the oracle, layer 2's MoE
                 random from a fixed seed; logits recomputed.
  qwen3_5_moe    tests/fixtures/oracle/qwen3_5_moe_f32 as it is (transformers
                 5's multimodal checkpoint with its vision tower); its
                 reference logits are the oracle's.

The fixtures have no tokenizer: the script gives llama.cpp's converter a
stand-in vocabulary (tokens "<0>".."<N-1>", BPE with one merge) instead of
the model classes' set_vocab, which would need tokenizer files.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
ORACLE = ROOT / "tests" / "fixtures" / "oracle"
SEED = 20261203


def stand_in_vocab(self):
    n = self.find_hparam(["vocab_size"])
    tokens = ["a", "b", "ab"] + [f"<{i}>" for i in range(3, n)]
    self.gguf_writer.add_tokenizer_model("gpt2")
    self.gguf_writer.add_tokenizer_pre("default")
    self.gguf_writer.add_token_list(tokens)
    self.gguf_writer.add_token_types([1] * n)
    self.gguf_writer.add_token_merges(["a b"])
    self.gguf_writer.add_bos_token_id(1)
    self.gguf_writer.add_eos_token_id(2)


def llama_convert(llama_src: Path, model_dir: Path, out: Path, extra):
    """Runs convert_hf_to_gguf.py in this process with the stand-in vocabulary."""
    code = f"""
import sys
sys.path[:0] = [{str(llama_src)!r}, {str(llama_src / 'gguf-py')!r}]
sys.argv = ['convert_hf_to_gguf.py', {str(model_dir)!r}, '--outfile', {str(out)!r}, '--outtype', 'f32'] + {extra!r}
import convert_hf_to_gguf as conv
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from gen_gguf_llamacpp_fixtures import stand_in_vocab
from conversion import base, qwen, deepseek
for cls in (base.TextModel, qwen.Qwen2MoeModel, qwen.Qwen3NextModel, qwen.Qwen3_5MoeTextModel, deepseek.DeepseekV2Model):
    cls.set_vocab = stand_in_vocab
conv.main()
"""
    env = dict(os.environ, PYTHONPATH=str(llama_src / "gguf-py"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"convert_hf_to_gguf.py failed on {model_dir}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")


def hf_logits(model_dir: Path, tokens: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    with torch.no_grad():
        return m(tokens[None].long()).logits[0].float().contiguous()


def variant_deepseek(tmp: Path) -> Path:
    d = tmp / "deepseek_v3"
    shutil.copytree(ORACLE / "deepseek_v3_f32", d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["scoring_func"] = "sigmoid"
    cfg["topk_method"] = "noaux_tc"
    cfg["rope_scaling"]["mscale"] = cfg["rope_scaling"]["mscale_all_dim"]
    (d / "config.json").write_text(json.dumps(cfg, indent=2))
    return d


def variant_qwen3_next(tmp: Path) -> Path:
    """Layer 2 MoE like the others; every other weight as in the oracle."""
    from transformers import AutoConfig, AutoModelForCausalLM

    d = tmp / "qwen3_next"
    d.mkdir()
    src = ORACLE / "qwen3_next_f32"
    cfg = AutoConfig.from_pretrained(src)
    cfg.mlp_only_layers = []
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    state = model.state_dict()
    old = load_file(str(src / "model.safetensors"))
    g = torch.Generator().manual_seed(SEED)
    for k, v in state.items():
        if k in old:
            state[k] = old[k]
        elif ".layers.2.mlp." in k:
            # The scale of the other layers' tensors of the same kind.
            like = k.replace(".layers.2.", ".layers.0.")
            std = old[like].float().std().item() if like in old else 0.05
            state[k] = torch.randn(v.shape, generator=g) * std
        else:
            raise SystemExit(f"unexpected tensor {k}")
    model.load_state_dict(state)
    model.save_pretrained(d, safe_serialization=True)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", type=Path, default=Path("/work/llama-src"))
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "gguf_llamacpp")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__}
    try:
        rev = subprocess.run(["git", "-C", str(args.llama_src), "rev-parse", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        rev = ""
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        jobs = [
            ("deepseek_v3", variant_deepseek(tmp), [], True),
            ("qwen3_next", variant_qwen3_next(tmp), ["--no-mtp"], True),
            ("qwen3_5_moe", ORACLE / "qwen3_5_moe_f32", ["--no-mtp"], False),
        ]
        for name, model_dir, extra, recompute in jobs:
            out = args.out / name
            out.mkdir(parents=True, exist_ok=True)
            llama_convert(args.llama_src, model_dir, out / "model.gguf", extra)
            ref = load_file(str(ORACLE / f"{name}_f32" / "reference.safetensors"))
            tokens = ref["tokens.17"]
            logits = hf_logits(model_dir, tokens) if recompute else ref["logits.17"]
            save_file({"tokens.17": tokens.contiguous(), "logits.17": logits.contiguous()},
                      str(out / "reference.safetensors"))
            (out / "source.json").write_text(json.dumps({
                "model": str(model_dir.relative_to(tmp) if recompute else model_dir.relative_to(ROOT)),
                "converter": "llama.cpp convert_hf_to_gguf.py --outtype f32 " + " ".join(extra),
                "llama_cpp_revision": rev,
                "versions": versions,
            }, indent=1, sort_keys=True) + "\n")
            print(f"{name}: {(out / 'model.gguf').stat().st_size} bytes")


if __name__ == "__main__":
    main()
