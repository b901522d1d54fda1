#!/usr/bin/env python3
"""llama.cpp's prefill and decode speed on a GGUF file, measured the way
`moeflux bench` measures ours, for the side-by-side tables in BENCHMARKS.md.

Same protocol as moeflux bench: a random prompt of --prompt-tokens ids
(seeded) evaluated in one batch (prefill tok/s), then --decode-tokens random
ids fed one at a time (decode tok/s: random ids, not greedy output, so both
engines route the same way a real text would rather than repeating a loop).
Thread count, context and the KV cache type are arguments so both engines run
the same configuration. llama.cpp memory-maps the file (its default), so a
model larger than RAM is paged from storage by the kernel.

  python scripts/bench_llamacpp.py MODEL.gguf --threads 2 -p 64 -n 16 --json
"""
import argparse
import json
import resource
import time

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-p", "--prompt-tokens", type=int, default=64)
    p.add_argument("-n", "--decode-tokens", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    import llama_cpp
    t_load = time.perf_counter()
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=a.prompt_tokens + a.decode_tokens + 8, n_batch=max(a.prompt_tokens, 8),
                          n_threads=a.threads, n_threads_batch=a.threads, verbose=False, logits_all=False)
    load_s = time.perf_counter() - t_load
    vocab = llm.n_vocab()
    rng = np.random.default_rng(a.seed)
    prompt = [int(t) for t in rng.integers(0, vocab, size=a.prompt_tokens)]
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    steps = []
    for tok in rng.integers(0, vocab, size=a.decode_tokens):
        ts = time.perf_counter()
        llm.eval([int(tok)])
        steps.append(time.perf_counter() - ts)
    out = {
        "engine": f"llama.cpp (llama-cpp-python {llama_cpp.__version__})",
        "model": a.model,
        "threads": a.threads,
        "prompt_tokens": a.prompt_tokens,
        "decode_tokens": a.decode_tokens,
        "load_s": load_s,
        "prefill_tok_s": a.prompt_tokens / (t1 - t0),
        "decode_tok_s": a.decode_tokens / sum(steps),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out.items():
            print(f"{k:15} {v}")


if __name__ == "__main__":
    main()
