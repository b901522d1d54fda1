#!/usr/bin/env python3
"""Writes the GGUF reader/writer fixtures in tests/fixtures/gguf/ with gguf-py
(llama.cpp's own Python package, pinned in scripts/requirements-gguf.txt), and
beside each NAME.gguf a NAME.json saying what gguf-py's GGUFReader reads back
from it: version, alignment, data offset, every metadata value with its type
(floats as bit patterns, so NaN and -0.0 compare exactly), and every tensor's
name, type, dims (GGUF order), offset, size and an FNV-1a 64 hash of its bytes.

The C++ tests read each file and must agree with the JSON; they also re-write
each v3 file with moeflux's GgufWriter and must reproduce gguf-py's bytes
exactly, which shows the writer's output is what gguf-py (and llama.cpp)
read. Seeded: rerunning gives the same bytes.

    /work/pyenv/bin/python scripts/gen_gguf_fixtures.py [--out tests/fixtures/gguf]
    [--corpus fuzz/corpus/gguf]   # also refresh the fuzzer's seed corpus
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

TYPE_NAMES = {
    VT.UINT8: "uint8", VT.INT8: "int8", VT.UINT16: "uint16", VT.INT16: "int16", VT.UINT32: "uint32",
    VT.INT32: "int32", VT.FLOAT32: "float32", VT.BOOL: "bool", VT.STRING: "string", VT.ARRAY: "array",
    VT.UINT64: "uint64", VT.INT64: "int64", VT.FLOAT64: "float64",
}


def fnv1a64(b: bytes) -> str:
    h = 0xCBF29CE484222325
    for x in b:
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# --- what GGUFReader read -------------------------------------------------------------------------------------

def decode_parts(parts, i, vtype):
    """Rebuilds one value from GGUFReader's flat field parts (it flattens nested
    arrays; the parts themselves are exactly what it read). Returns (json, next index)."""
    vtype = VT(vtype)
    if vtype == VT.STRING:
        return {"type": "string", "value": bytes(parts[i + 1].tobytes()).decode("utf-8")}, i + 2
    if vtype == VT.ARRAY:
        itype = VT(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            item, i = decode_parts(parts, i, itype)
            items.append(item)
        return {"type": "array", "elem": TYPE_NAMES[itype], "items": items}, i
    v = parts[i][0]
    if vtype == VT.FLOAT32:
        return {"type": "float32", "bits": struct.unpack("<I", np.float32(v).tobytes())[0]}, i + 1
    if vtype == VT.FLOAT64:
        return {"type": "float64", "bits": struct.unpack("<Q", np.float64(v).tobytes())[0]}, i + 1
    if vtype == VT.BOOL:
        return {"type": "bool", "value": bool(v)}, i + 1
    return {"type": TYPE_NAMES[vtype], "value": int(v)}, i + 1


def describe(path):
    r = gguf.GGUFReader(path)
    with open(path, "rb") as f:
        version = struct.unpack("<I", f.read(8)[4:8])[0]
    meta = []
    for field in r.fields.values():
        if field.name.startswith("GGUF."):
            continue  # the reader's pseudo-fields for the header counts
        # parts: key length, key bytes, value type, value parts...
        value, end = decode_parts(field.parts, 3, int(field.parts[2][0]))
        assert end == len(field.parts), field.name
        meta.append({"key": field.name, **value})
    tensors = []
    for t in r.tensors:
        data = t.data.tobytes()
        assert len(data) == t.n_bytes, t.name
        tensors.append({
            "name": t.name, "type": int(t.tensor_type), "dims": [int(d) for d in t.shape],
            "n_elements": int(t.n_elements), "offset": int(t.data_offset), "nbytes": int(t.n_bytes),
            "fnv1a64": fnv1a64(data),
        })
    return {"version": version, "alignment": int(r.alignment), "data_offset": int(r.data_offset),
            "file_size": os.path.getsize(path), "metadata": meta, "tensors": tensors}


# --- fixtures --------------------------------------------------------------------------------------------------

def raw_tensor(rng, qtype, dims):
    """Random bytes of the right size for `dims` (GGUF order) of `qtype`, shaped
    as gguf-py wants quantized data: numpy order with the row in bytes."""
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    assert dims[0] % block == 0
    np_shape = list(reversed(dims))
    np_shape[-1] = dims[0] // block * type_size
    return rng.integers(0, 256, size=np_shape, dtype=np.uint8)


def add_raw(w, name, qtype, dims, rng):
    w.add_tensor(name, raw_tensor(rng, qtype, dims), raw_dtype=qtype)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def all_types(path, rng):
    w = gguf.GGUFWriter(path, "test")
    kv = w.add_key_value
    kv("t.u8", 255, VT.UINT8)
    kv("t.i8", -128, VT.INT8)
    kv("t.u16", 65535, VT.UINT16)
    kv("t.i16", -32768, VT.INT16)
    kv("t.u32", 4294967295, VT.UINT32)
    kv("t.i32", -2147483648, VT.INT32)
    kv("t.f32", 1.5, VT.FLOAT32)
    kv("t.f32_neg_zero", -0.0, VT.FLOAT32)
    kv("t.f32_inf", float("inf"), VT.FLOAT32)
    kv("t.f32_nan", float("nan"), VT.FLOAT32)
    kv("t.bool_true", True, VT.BOOL)
    kv("t.bool_false", False, VT.BOOL)
    kv("t.str", "héllo, wörld ✓ 🙂", VT.STRING)
    kv("t.str_empty", "", VT.STRING)
    kv("t.u64", 18446744073709551615, VT.UINT64)
    kv("t.i64", -9223372036854775808, VT.INT64)
    kv("t.f64", 0.1, VT.FLOAT64)
    kv("t.f64_denormal", 5e-324, VT.FLOAT64)
    kv("a.u8", [0, 1, 255], VT.ARRAY, VT.UINT8)
    kv("a.i8", [-1, 2, -3], VT.ARRAY, VT.INT8)
    kv("a.u16", [1, 65535], VT.ARRAY, VT.UINT16)
    kv("a.i16", [-2, 3], VT.ARRAY, VT.INT16)
    kv("a.u32", [7, 8, 9, 10], VT.ARRAY, VT.UINT32)
    kv("a.i32", [-7, 8], VT.ARRAY, VT.INT32)
    kv("a.f32", [0.25, -1e30, 3.0], VT.ARRAY, VT.FLOAT32)
    kv("a.bool", [True, False, True], VT.ARRAY, VT.BOOL)
    kv("a.str", ["a", "", "ünïcode", "x" * 300], VT.ARRAY, VT.STRING)
    kv("a.u64", [2**63, 1], VT.ARRAY, VT.UINT64)
    kv("a.i64", [-(2**62), 5], VT.ARRAY, VT.INT64)
    kv("a.f64", [1e-300, -2.5], VT.ARRAY, VT.FLOAT64)
    kv("n.int_rows", [[1, 2, 3], [4], [5, 6]], VT.ARRAY, VT.ARRAY)
    kv("n.mixed", [["x", "yz"], [1.5, 2.5], [True]], VT.ARRAY, VT.ARRAY)
    kv("n.deep", [[[1, 2], [3]], [[4]]], VT.ARRAY, VT.ARRAY)
    # Odd shapes; quant rows a whole number of blocks (ggml quantizes rows independently).
    w.add_tensor("f32.odd", rng.standard_normal((3, 7)).astype(np.float32))
    w.add_tensor("f16.vec", rng.standard_normal(5).astype(np.float16))
    w.add_tensor("f32.4d", rng.standard_normal((2, 1, 3, 5)).astype(np.float32))
    w.add_tensor("i32.ids", np.arange(11, dtype=np.int32))
    w.add_tensor("q8_0.m", gguf.quants.quantize(rng.standard_normal((3, 64)).astype(np.float32), QT.Q8_0),
                 raw_dtype=QT.Q8_0)
    w.add_tensor("q4_0.3d", gguf.quants.quantize(rng.standard_normal((3, 5, 32)).astype(np.float32), QT.Q4_0),
                 raw_dtype=QT.Q4_0)
    w.add_tensor("bf16.m", gguf.quants.quantize(rng.standard_normal((2, 9)).astype(np.float32), QT.BF16),
                 raw_dtype=QT.BF16)
    add_raw(w, "q4_k.m", QT.Q4_K, [256, 2], rng)
    add_raw(w, "q6_k.m", QT.Q6_K, [512, 1], rng)
    add_raw(w, "mxfp4.m", QT.MXFP4, [64, 3], rng)
    finish(w)


def with_version(src, dst, version):
    b = bytearray(open(src, "rb").read())
    b[4:8] = struct.pack("<I", version)  # v2 and v3 share the layout; v3 only allowed big-endian files
    open(dst, "wb").write(b)


def aligned(path, rng, alignment):
    w = gguf.GGUFWriter(path, "test")
    w.add_custom_alignment(alignment)
    w.add_uint32("t.n", 3)
    w.add_tensor("a", rng.standard_normal(3).astype(np.float32))
    w.add_tensor("b", rng.standard_normal((2, 3)).astype(np.float16))
    add_raw(w, "c", QT.Q5_K, [256], rng)
    w.add_tensor("d", np.ones(1, dtype=np.float32))
    finish(w)


def no_tensors(path):
    w = gguf.GGUFWriter(path, "test")
    w.add_string("general.name", "metadata only")
    finish(w)


def gpt2_vocab():
    """A small byte-level BPE vocabulary in the GPT-2 scheme: 256 byte tokens,
    some merges, then special tokens."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_tokens = [chr(c) for _, c in sorted(zip(bs, cs))]
    merges = ["Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t"]
    tokens = byte_tokens + ["".join(m.split(" ")) for m in merges]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [1] * len(tokens) + [3] * len(specials)
    return tokens + specials, types, merges


CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tiny_qwen3moe(path, rng):
    arch = "qwen3moe"
    n_embd, n_ff_exp, n_expert, n_head, n_head_kv, head_dim = 64, 32, 4, 4, 2, 16
    tokens, types, merges = gpt2_vocab()
    n_vocab = len(tokens)
    w = gguf.GGUFWriter(path, arch)
    w.add_name("tiny-qwen3moe")
    w.add_block_count(1)
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(96)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(n_expert)
    w.add_expert_used_count(2)
    w.add_expert_feed_forward_length(n_ff_exp)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_pad_token_id(tokens.index("<|endoftext|>"))
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def f32(*np_shape):
        return (rng.standard_normal(np_shape) * 0.02).astype(np.float32)

    def q8(*np_shape):
        return gguf.quants.quantize(f32(*np_shape), QT.Q8_0)

    w.add_tensor("token_embd.weight", f32(n_vocab, n_embd).astype(np.float16))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", q8(n_head * head_dim, n_embd), raw_dtype=QT.Q8_0)
    w.add_tensor("blk.0.attn_k.weight", q8(n_head_kv * head_dim, n_embd), raw_dtype=QT.Q8_0)
    w.add_tensor("blk.0.attn_v.weight", q8(n_head_kv * head_dim, n_embd), raw_dtype=QT.Q8_0)
    w.add_tensor("blk.0.attn_output.weight", q8(n_embd, n_head * head_dim), raw_dtype=QT.Q8_0)
    w.add_tensor("blk.0.attn_q_norm.weight", np.ones(head_dim, dtype=np.float32))
    w.add_tensor("blk.0.attn_k_norm.weight", np.ones(head_dim, dtype=np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("blk.0.ffn_gate_inp.weight", f32(n_expert, n_embd))
    # Stacked experts: numpy [n_expert, n_ff, n_embd] is GGUF [n_embd, n_ff, n_expert].
    w.add_tensor("blk.0.ffn_gate_exps.weight", q8(n_expert, n_ff_exp, n_embd), raw_dtype=QT.Q8_0)
    w.add_tensor("blk.0.ffn_up_exps.weight", q8(n_expert, n_ff_exp, n_embd), raw_dtype=QT.Q8_0)
    w.add_tensor("blk.0.ffn_down_exps.weight", q8(n_expert, n_embd, n_ff_exp), raw_dtype=QT.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", q8(n_vocab, n_embd), raw_dtype=QT.Q8_0)
    finish(w)


def tiny_llama_spm(path, rng):
    """A SentencePiece ("llama") vocabulary: scores, byte tokens, control tokens, named templates."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁", "▁the", "▁a", "he", "llo"]
    types = [2, 3, 3] + [6] * 256 + [1] * 5
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-1.0, -2.0, -3.0, -4.5, -5.25]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores(scores)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_chat_template([{"name": "default", "template": "{{ bos_token }}{{ messages[0]['content'] }}"},
                         {"name": "tool_use", "template": "{{ tools }}"}])
    w.add_tensor("token_embd.weight", (rng.standard_normal((len(tokens), 32)) * 0.02).astype(np.float16))
    finish(w)


def writer_ref(path):
    """Built the same way by GgufWriterTest.MatchesGgufPyByteForByte, from constants."""
    w = gguf.GGUFWriter(path, "ref")
    w.add_uint32("ref.u32", 7)
    w.add_float32("ref.f32", 0.5)
    w.add_string("ref.str", "hi")
    w.add_key_value("ref.arr", [[1, 2], [3]], VT.ARRAY, VT.ARRAY)
    w.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("q", np.arange(68, dtype=np.uint8).reshape(2, 34), raw_dtype=QT.Q8_0)
    finish(w)


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "tests/fixtures/gguf"))
    ap.add_argument("--corpus", default=os.path.join(root, "fuzz/corpus/gguf"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda n: os.path.join(args.out, n)  # noqa: E731
    rng = np.random.default_rng(20260501)
    all_types(out("all_types_v3.gguf"), rng)
    with_version(out("all_types_v3.gguf"), out("all_types_v2.gguf"), 2)
    aligned(out("align64.gguf"), rng, 64)
    aligned(out("align1.gguf"), rng, 1)
    no_tensors(out("no_tensors.gguf"))
    tiny_qwen3moe(out("tiny_qwen3moe.gguf"), rng)
    tiny_llama_spm(out("tiny_llama_spm.gguf"), rng)
    writer_ref(out("writer_ref.gguf"))
    names = sorted(n for n in os.listdir(args.out) if n.endswith(".gguf"))
    for n in names:
        with open(out(n[:-5] + ".json"), "w") as f:
            json.dump(describe(out(n)), f, indent=1, ensure_ascii=True)
            f.write("\n")
    if args.corpus:
        os.makedirs(args.corpus, exist_ok=True)
        for n in names:
            # Small seeds keep libFuzzer's default max_len (the largest seed) and its mutations fast.
            if os.path.getsize(out(n)) <= 32 * 1024:
                shutil.copyfile(out(n), os.path.join(args.corpus, n))
    total = sum(os.path.getsize(out(n)) for n in os.listdir(args.out))
    print(f"wrote {len(names)} GGUF fixtures ({total} bytes with their JSON) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
