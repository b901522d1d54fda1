#!/usr/bin/env python3
"""HF `tokenizers` single-thread load time and encode throughput, on the
same documents as bench/tokenizer_bench.cpp (the fixture corpus, invalid
UTF-8 replaced, 20 strings per document joined by newlines; one `encode`
per document, no special tokens, no encode_batch).

  python scripts/bench_hf_tokenizer.py [name ...]   (default qwen3; "all")
"""
import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import gzip  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from tokenizers import Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
SHARED = os.path.join(ROOT, "..", "shared", "tokenizers")


def documents():
    raw = gzip.open(os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.bin.gz")).read()
    n = struct.unpack_from("<I", raw, 8)[0]
    p, docs, cur = 12, [], []
    for i in range(n):
        (ln,) = struct.unpack_from("<I", raw, p)
        p += 4
        cur.append(raw[p:p + ln].decode("utf-8", "replace"))
        p += ln
        if (i + 1) % 20 == 0:
            docs.append("\n".join(cur))
            cur = []
    if cur:
        docs.append("\n".join(cur))
    return docs


def bench(name, docs):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tokenizer.json")
        with open(path, "wb") as f:
            f.write(gzip.open(os.path.join(SHARED, name, "tokenizer.json.gz")).read())
        loads = []
        for _ in range(5):
            t = time.perf_counter()
            tok = Tokenizer.from_file(path)
            loads.append((time.perf_counter() - t) * 1e3)
    nbytes = sum(len(s.encode()) for s in docs)
    cold_t = time.perf_counter()
    for s in docs:
        tok.encode(s, add_special_tokens=False)
    cold = time.perf_counter() - cold_t
    runs = []
    for _ in range(7):
        t = time.perf_counter()
        ntok = 0
        for s in docs:
            ntok += len(tok.encode(s, add_special_tokens=False).ids)
        runs.append(time.perf_counter() - t)
    med = statistics.median(runs)
    print(f"{name:12s} HF load tokenizer.json {min(loads):6.1f} ms | encode {len(docs)} docs {nbytes / 1e6:.2f} MB -> "
          f"{ntok} tokens: median {med * 1e3:.1f} ms = {nbytes / 1e6 / med:.1f} MB/s "
          f"(cold first pass {nbytes / 1e6 / cold:.1f} MB/s)")


def main():
    names = sys.argv[1:] or ["qwen3"]
    if names == ["all"]:
        names = ["qwen3", "deepseek_v3", "llama3", "gptoss", "llama2"]
    docs = documents()
    for n in names:
        bench(n, docs)


if __name__ == "__main__":
    main()
