#!/usr/bin/env python3
"""What llama.cpp itself does with GGUF vocabularies, for moeflux's tests
(tests/tokenizer/gguf_llama_cpp_test.cpp).

  python scripts/gen_gguf_vocab_fixtures.py --llama-cpp LLAMA_CPP_DIR \\
      --test-binary build/test_tokenizer [--shared ../shared] [--out tests/fixtures/gguf_vocab]

LLAMA_CPP_DIR is a llama.cpp source tree (models/ggml-vocab-*.gguf and their
.inp/.out test vectors, convert_hf_to_gguf.py, conversion/, gguf-py/); the
llama.cpp that tokenizes is llama-cpp-python's (`import llama_cpp`, built
from the same llama.cpp for the fixtures in the repository). Needs torch and
transformers for convert_hf_to_gguf.py.

Writes to --out:
  llama-spm.gguf.gz      llama.cpp's own vocab-only GGUF of the Llama 2
                         SentencePiece vocabulary (models/ggml-vocab-llama-spm.gguf)
  <v>.inp, <v>.out       llama.cpp's test vectors for the vocabularies v =
                         llama-spm, qwen2, llama-bpe, qwen35 (verbatim copies):
                         strings separated by "\\n__ggml_vocab_test__\\n", one line
                         of space-separated ids per string (encode without
                         BOS). qwen2, qwen35 and llama-bpe share their base
                         vocabulary and merges with our qwen3 / llama3 tokenizers.
  llama_cpp.json.gz      {
    "llama_cpp": {"version", "commit"},
    "corpus_size": n,      (tests/fixtures/tokenizer/corpus.bin.gz, each string
                           decoded with errors="replace" as HF sees it)
    "tokenize": {
      "llama-spm": {"plain": [ids...] per string, "special": {"<index>": ids}},
      "<case>":    {"plain": {"<index>": ids}, "special": {...}}
    },
    "convert": {"<case>": {"<key>": fingerprint or value} | {"error": text}}
  }
  "plain" is llama_tokenize(text, add_special=false, parse_special=true),
  "special" the same with add_special=true, stored only where it is not
  [BOS] + plain for llama-spm. For the exported cases (the
  files the C++ test writes with gguf_tokenizer_metadata, see
  tests/tokenizer/gguf_cases.h; the script runs the test binary with
  MOEFLUX_GGUF_EXPORT_DIR to get exactly those files) only the strings where
  llama.cpp's ids differ from Hugging Face's (tests/fixtures/tokenizer/
  <case>.ids.bin.gz) are stored.
  "convert" describes what llama.cpp's convert_hf_to_gguf.py --vocab-only
  writes for the same tokenizer.json/tokenizer_config.json (plus a minimal
  config.json naming an architecture): arrays as FNV-1a 64 fingerprints
  (hex) of their little-endian bytes (strings: u32 length then bytes;
  int32 and float32: 4 bytes each), scalars as values.
"""
import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

CASES = ["qwen3", "deepseek_v3", "llama3", "gptoss", "llama2", "demo"]
LLAMA_VECTORS = ["llama-spm", "qwen2", "llama-bpe", "qwen35"]
# A model class of convert_hf_to_gguf.py for each tokenizer (vocab only, so
# the shapes are placeholders).
ARCH = {
    "qwen3": "Qwen3MoeForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
    "llama3": "LlamaForCausalLM",
    "gptoss": "GptOssForCausalLM",
    "llama2": "MixtralForCausalLM",
    "demo": "Qwen3MoeForCausalLM",
}

FNV_OFFSET, FNV_PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv1a(data, h=FNV_OFFSET):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def fingerprint(kind, values):
    if kind == "string":
        data = b"".join(struct.pack("<I", len(v)) + v for v in values)
    elif kind == "int32":
        data = struct.pack(f"<{len(values)}i", *values)
    else:
        data = struct.pack(f"<{len(values)}f", *values)
    return f"{fnv1a(data):016x}"


def read_corpus(path):
    d = gzip.open(path).read()
    assert d[:4] == b"MFTC"
    version, n = struct.unpack_from("<II", d, 4)
    assert version == 1
    p, out = 12, []
    for _ in range(n):
        (k,) = struct.unpack_from("<I", d, p)
        out.append(d[p + 4 : p + 4 + k])
        p += 4 + k
    return out


def read_hf_ids(path):
    d = gzip.open(path).read()
    assert d[:4] == b"MFTI"
    version, n = struct.unpack_from("<II", d, 4)
    p, out = 12, []

    def ids():
        nonlocal p
        (k,) = struct.unpack_from("<I", d, p)
        v = list(struct.unpack_from(f"<{k}I", d, p + 4))
        p += 4 + 4 * k
        return v

    def skip_dec():
        nonlocal p
        (k,) = struct.unpack_from("<I", d, p)
        p += 4 + (k - 1 if k else 0)

    for _ in range(n):
        plain, special = ids(), ids()
        skip_dec()
        skip_dec()
        out.append((plain, special))
    return out


def llama_tokenize(path, texts):
    from llama_cpp import Llama

    m = Llama(path, vocab_only=True, verbose=False)
    plain = [m.tokenize(t, add_bos=False, special=True) for t in texts]
    special = [m.tokenize(t, add_bos=True, special=True) for t in texts]
    return plain, special


def convert_fingerprints(llama_cpp, shared, name, fixture_dir):
    import gguf  # llama.cpp's gguf-py (on sys.path below)

    src = os.path.join(fixture_dir, "..", "tokenizer", "demo") if name == "demo" else os.path.join(shared, name)
    with tempfile.TemporaryDirectory() as d:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            if os.path.exists(os.path.join(src, f)):
                shutil.copy(os.path.join(src, f), d)
            elif os.path.exists(os.path.join(src, f + ".gz")):
                with gzip.open(os.path.join(src, f + ".gz")) as fi, open(os.path.join(d, f), "wb") as fo:
                    fo.write(fi.read())
        tok = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
        n_vocab = 1 + max(list(tok["model"]["vocab"].values()) + [t["id"] for t in tok.get("added_tokens", [])])
        config = {
            "architectures": [ARCH[name]], "vocab_size": n_vocab, "hidden_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "intermediate_size": 64,
            "moe_intermediate_size": 32, "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4,
            "num_experts_per_tok": 2, "experts_per_token": 2, "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "torch_dtype": "bfloat16", "sliding_window": 128,
            "kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 16, "qk_nope_head_dim": 16,
            "v_head_dim": 16, "n_shared_experts": 1, "first_k_dense_replace": 1, "routed_scaling_factor": 1.0,
            "n_group": 1, "topk_group": 1, "norm_topk_prob": True, "scoring_func": "sigmoid",
        }
        json.dump(config, open(os.path.join(d, "config.json"), "w"))
        out = os.path.join(d, "vocab.gguf")
        r = subprocess.run([sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), d, "--vocab-only",
                            "--outfile", out], capture_output=True, text=True)
        if r.returncode != 0:
            lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
            return {"error": lines[-1] if lines else f"exit code {r.returncode}"}
        reader = gguf.GGUFReader(out)
        res = {}
        for key, field in reader.fields.items():
            if not key.startswith("tokenizer."):
                continue
            t = field.types[0]
            if t == gguf.GGUFValueType.ARRAY:
                et = field.types[1]
                vals = [field.parts[i] for i in field.data]
                if et == gguf.GGUFValueType.STRING:
                    res[key] = fingerprint("string", [bytes(v) for v in vals])
                elif et == gguf.GGUFValueType.INT32:
                    res[key] = fingerprint("int32", [int(v[0]) for v in vals])
                elif et == gguf.GGUFValueType.FLOAT32:
                    res[key] = fingerprint("float32", [float(v[0]) for v in vals])
                else:
                    res[key] = f"array of {et.name}"
            elif t == gguf.GGUFValueType.STRING:
                s = bytes(field.parts[field.data[0]])
                res[key] = s.decode("utf-8") if len(s) < 64 else fingerprint("string", [s])
            elif t == gguf.GGUFValueType.BOOL:
                res[key] = bool(field.parts[field.data[0]][0])
            else:
                res[key] = int(field.parts[field.data[0]][0])
        return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True)
    ap.add_argument("--llama-cpp-commit", default="")
    ap.add_argument("--test-binary", required=True)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared", "tokenizers"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "gguf_vocab"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.llama_cpp, "gguf-py"))
    import llama_cpp

    os.makedirs(args.out, exist_ok=True)
    models = os.path.join(args.llama_cpp, "models")
    with open(os.path.join(models, "ggml-vocab-llama-spm.gguf"), "rb") as fi:
        with gzip.GzipFile(os.path.join(args.out, "llama-spm.gguf.gz"), "wb", 9, mtime=0) as fo:
            fo.write(fi.read())
    for v in LLAMA_VECTORS:
        for ext in ("inp", "out"):
            shutil.copy(os.path.join(models, f"ggml-vocab-{v}.gguf.{ext}"), os.path.join(args.out, f"{v}.{ext}"))

    fixtures = os.path.join(here, "..", "tests", "fixtures", "tokenizer")
    texts = [s.decode("utf-8", "replace").encode("utf-8") for s in read_corpus(os.path.join(fixtures, "corpus.bin.gz"))]
    commit = args.llama_cpp_commit
    if not commit and os.path.isdir(os.path.join(args.llama_cpp, ".git")):
        commit = subprocess.run(["git", "-C", args.llama_cpp, "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    result = {"llama_cpp": {"version": llama_cpp.__version__, "commit": commit}, "corpus_size": len(texts),
              "tokenize": {}, "convert": {}}

    plain, special = llama_tokenize(os.path.join(models, "ggml-vocab-llama-spm.gguf"), texts)
    # With special tokens the ids are BOS (1) + the plain ids but where a
    # string starts with a BOS of its own; only those are stored.
    result["tokenize"]["llama-spm"] = {
        "plain": plain, "special": {str(i): s for i, (p, s) in enumerate(zip(plain, special)) if s != [1] + p}}

    with tempfile.TemporaryDirectory() as export_dir:
        env = dict(os.environ, MOEFLUX_GGUF_EXPORT_DIR=export_dir)
        subprocess.run([args.test_binary, "--gtest_filter=All/GgufRoundTrip.VocabularyAndSpecials/*"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        for name in CASES:
            path = os.path.join(export_dir, name + ".gguf")
            if not os.path.exists(path):
                print(f"{name}: not exported (missing tokenizer?), skipped", file=sys.stderr)
                continue
            plain, special = llama_tokenize(path, texts)
            hf = read_hf_ids(os.path.join(fixtures, name + ".ids.bin.gz"))
            diff_p = {str(i): p for i, (p, h) in enumerate(zip(plain, hf)) if p != h[0]}
            diff_s = {str(i): s for i, (s, h) in enumerate(zip(special, hf)) if s != h[1]}
            result["tokenize"][name] = {"plain": diff_p, "special": diff_s}
            print(f"{name}: llama.cpp differs from HF on {len(diff_p)} strings (plain), {len(diff_s)} (special)",
                  file=sys.stderr)
            result["convert"][name] = convert_fingerprints(args.llama_cpp, args.shared, name, args.out)
            print(f"{name}: convert_hf_to_gguf.py -> {result['convert'][name].get('error', 'ok')}", file=sys.stderr)

    with gzip.GzipFile(os.path.join(args.out, "llama_cpp.json.gz"), "wb", 9, mtime=0) as f:
        f.write(json.dumps(result, separators=(",", ":"), sort_keys=True).encode("utf-8"))


if __name__ == "__main__":
    main()
