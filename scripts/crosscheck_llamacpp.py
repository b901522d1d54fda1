#!/usr/bin/env python3
"""Cross-implementation check: moeflux and llama.cpp on the same GGUF files.

For each tiny synthetic model (one per architecture):
  1. `moeflux synth` writes the Hugging Face model (seeded, deterministic);
  2. `moeflux convert` writes GGUFs of several types ("ours");
  3. llama.cpp's own tools write GGUFs of the same model ("theirs"):
     convert_hf_to_gguf.py for f32/q8_0 and llama_model_quantize for Q4_K_M;
  4. both engines score the same token ids on every file; the script reports
     top-1 agreement and KL(llama.cpp || moeflux) per position.

With --fixtures DIR it also writes llama.cpp's logits on our converted files
(float32 .npy) and a manifest.json, which tests/convert replays in CI without
Python: it synthesises and converts the same models, checks the GGUF bytes
hash to the recorded value (FNV-1a 64), and compares moeflux's logits with llama.cpp's.

Needs: llama-cpp-python (built from source, the same build throughout), numpy,
and llama.cpp's sources for convert_hf_to_gguf.py (--llama-src; the sdist of
llama-cpp-python carries them under vendor/llama.cpp).

  python scripts/crosscheck_llamacpp.py --moeflux build/moeflux \\
      --llama-src /work/llsrc --work /tmp/xcheck --fixtures tests/fixtures/llamacpp
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

# (preset, extra synth args). tiny-moe is cut to 2 layers / 8 experts so all four stay ~10 MB.
MODELS = [
    ("tiny-moe", ["--layers", "2", "--experts", "8"]),
    ("tiny-qwen2-moe", []),
    ("tiny-olmoe", []),
    ("tiny-mixtral", []),
]
OUR_TYPES = ["f32", "q8_0", "q4_k_m"]
SEED = 20261127
TOKENS = [int(t) for t in np.random.default_rng(SEED).integers(3, 2048, size=12)]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def fnv1a64(path):
    """FNV-1a 64 of the file: the C++ test recomputes it without a crypto library."""
    data = np.fromfile(path, dtype=np.uint8)
    h = 0xCBF29CE484222325
    for chunk in np.array_split(data, max(1, len(data) // (1 << 20))):
        for b in chunk.tobytes():
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def compare(ref, ours):
    """top-1 agreement and KL(ref || ours) per position (nats)."""
    lp, lq = log_softmax(ref), log_softmax(ours)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=-1)
    top1 = (ref.argmax(-1) == ours.argmax(-1)).mean()
    return {"top1_agree": float(top1), "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
            "max_abs_logit_diff": float(np.abs(ref - ours).max()), "logit_scale": float(np.abs(ref).max())}


def llama_logits(path, tokens):
    import llama_cpp
    # f32 K/V cache so the comparison is about weights and kernels, not cache rounding.
    llm = llama_cpp.Llama(model_path=path, n_ctx=64, n_batch=64, logits_all=True, n_threads=2, verbose=False,
                          type_k=0, type_v=0, seed=0)
    llm.eval(tokens)
    out = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    del llm
    return out


def moeflux_logits(moeflux, path, tokens, work):
    npy = os.path.join(work, "moeflux_logits.npy")
    run([moeflux, "score", path, "--tokens", ",".join(map(str, tokens)), "--logits-out", npy, "--force",
         "--threads", "2"])
    return np.load(npy)


def llama_convert(llama_src, hf_dir, out, outtype, pre):
    """llama.cpp's convert_hf_to_gguf.py; our demo tokenizer's pre-tokenizer hash is not in its table, so the
    script is told the name our exporter chose for it (the same regex either way)."""
    code = f"""
import sys, runpy
sys.path[:0] = [{llama_src!r}, {os.path.join(llama_src, 'gguf-py')!r}]
import conversion.base as base
orig = base.TextModel.get_vocab_base_pre
def patched(self, tokenizer):
    try:
        return orig(self, tokenizer)
    except NotImplementedError:  # the hash of our demo tokenizer is not in llama.cpp's table
        return {pre!r}
base.TextModel.get_vocab_base_pre = patched
sys.argv = ["convert_hf_to_gguf.py", {hf_dir!r}, "--outfile", {out!r}, "--outtype", {outtype!r}]
runpy.run_path({os.path.join(llama_src, 'convert_hf_to_gguf.py')!r}, run_name="__main__")
"""
    run([sys.executable, "-c", code])


def llama_quantize(src, dst, ftype):
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        sys.exit(f"llama_model_quantize({src} -> {dst}) failed: {rc}")


def gguf_pre(path):
    sys.path.insert(0, os.path.join(ARGS.llama_src, "gguf-py"))
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields["tokenizer.ggml.pre"]
    return bytes(f.parts[f.data[0]]).decode()


def main():
    work = ARGS.work
    os.makedirs(work, exist_ok=True)
    report, manifest = [], {"seed": SEED, "tokens": TOKENS, "models": []}
    import llama_cpp
    for preset, extra in MODELS:
        hf = os.path.join(work, preset)
        shutil.rmtree(hf, ignore_errors=True)
        run([ARGS.moeflux, "synth", "--preset", preset, "-o", hf, "--seed", str(SEED)] + extra)
        for t in OUR_TYPES:
            ours = os.path.join(work, f"{preset}-ours-{t}.gguf")
            run([ARGS.moeflux, "convert", hf, "-o", ours, "--type", t, "-q", "--force"])
            ref = llama_logits(ours, TOKENS)
            mine = moeflux_logits(ARGS.moeflux, ours, TOKENS, work)
            c = compare(ref, mine)
            report.append({"model": preset, "file": f"moeflux convert --type {t}", **c})
            if ARGS.fixtures:
                os.makedirs(ARGS.fixtures, exist_ok=True)
                name = f"{preset}-{t}.npy"
                np.save(os.path.join(ARGS.fixtures, name), ref)
                manifest["models"].append({"preset": preset, "synth_args": extra, "type": t,
                                           "gguf_fnv1a64": fnv1a64(ours), "llamacpp_logits": name, "measured": c})
        pre = gguf_pre(os.path.join(work, f"{preset}-ours-f32.gguf"))
        for outtype in ["f32", "q8_0"]:
            theirs = os.path.join(work, f"{preset}-llamacpp-{outtype}.gguf")
            if os.path.exists(theirs):
                os.remove(theirs)
            llama_convert(ARGS.llama_src, hf, theirs, outtype, pre)
            c = compare(llama_logits(theirs, TOKENS), moeflux_logits(ARGS.moeflux, theirs, TOKENS, work))
            report.append({"model": preset, "file": f"convert_hf_to_gguf.py --outtype {outtype}", **c})
        q4 = os.path.join(work, f"{preset}-llamacpp-q4_k_m.gguf")
        llama_quantize(os.path.join(work, f"{preset}-llamacpp-f32.gguf"), q4, llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
        c = compare(llama_logits(q4, TOKENS), moeflux_logits(ARGS.moeflux, q4, TOKENS, work))
        report.append({"model": preset, "file": "llama_model_quantize Q4_K_M", **c})
    print(f"{'model':16} {'file':38} {'top1':>5} {'KL mean':>9} {'KL max':>9} {'max|dlogit|':>11} {'scale':>7}")
    for r in report:
        print(f"{r['model']:16} {r['file']:38} {r['top1_agree']:5.2f} {r['kl_mean']:9.2e} {r['kl_max']:9.2e} "
              f"{r['max_abs_logit_diff']:11.2e} {r['logit_scale']:7.2f}")
    if ARGS.fixtures:
        manifest["llama_cpp_python"] = llama_cpp.__version__
        with open(os.path.join(ARGS.fixtures, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
    with open(os.path.join(work, "report.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moeflux", required=True)
    p.add_argument("--llama-src", required=True, help="llama.cpp sources (convert_hf_to_gguf.py, gguf-py)")
    p.add_argument("--work", default="/tmp/moeflux-xcheck")
    p.add_argument("--fixtures", help="write llama.cpp logits + manifest for tests/convert here")
    ARGS = p.parse_args()
    main()
