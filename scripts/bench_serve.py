#!/usr/bin/env python3
"""Measures a running `moeflux serve` with the standard library only.

  ttft:        time to first token of a request that shares a long system
               prompt with an earlier one after another conversation took
               the slot (run against a server with and without --prefix-cache)
  concurrency: N clients streaming at once for a fixed time: requests,
               generated tok/s and time-to-first-token / latency percentiles;
               with --rss-pid, the server's resident memory after a warm-up
               and at the end, and a non-zero exit on any error or on growth
               beyond --rss-growth (the load test)

    moeflux serve MODEL --port 8080 --parallel 4 [--prefix-cache 2G] &
    python3 scripts/bench_serve.py --url http://127.0.0.1:8080 ttft --system-tokens 2000
    python3 scripts/bench_serve.py --url http://127.0.0.1:8080 concurrency --clients 4 --seconds 30
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse


def stream(url, body):
    """POSTs a streamed completion; returns (ttft_s, total_s, completion_tokens)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t0 = time.monotonic()
    conn.request("POST", "/v1/completions", json.dumps(dict(body, stream=True)), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"{resp.status}: {resp.read()[:200]}")
    ttft, tokens, usage_tokens = None, 0, None
    for line in resp:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if ttft is None:
            ttft = time.monotonic() - t0
        if chunk.get("usage"):
            usage_tokens = chunk["usage"]["completion_tokens"]
        elif chunk.get("choices"):
            tokens += 1  # servers that send no usage (llama-server): one token per chunk
    conn.close()
    return ttft, time.monotonic() - t0, usage_tokens if usage_tokens is not None else tokens


def ids(n, seed):
    """n token ids (exact prompt lengths whatever the tokenizer), seeded, in [300, 1300)."""
    return [300 + (i * 7919 + seed * 104729) % 1000 for i in range(n)]


def ttft(args):
    system = ids(args.system_tokens, 1)
    other = ids(args.system_tokens, 2)

    def ask(prefix, q):
        return stream(args.url, {"prompt": prefix + ids(16, 10 + q), "max_tokens": 8, "temperature": 0})
    first = ask(system, 1)[0]
    ask(other, 1)  # another conversation takes the slot
    again = ask(system, 2)[0]
    print(f"ttft: first {first * 1e3:.0f} ms, shared prefix after another conversation {again * 1e3:.0f} ms")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def concurrency(args):
    stop_at = time.monotonic() + args.seconds
    rss = {}
    if args.rss_pid:
        def sample():
            warm_at = time.monotonic() + args.seconds * 0.25
            while time.monotonic() < stop_at:
                if "warm" not in rss and time.monotonic() >= warm_at:
                    rss["warm"] = rss_kib(args.rss_pid)
                rss["peak"] = max(rss.get("peak", 0), rss_kib(args.rss_pid))
                time.sleep(0.2)
        threading.Thread(target=sample, daemon=True).start()
    ttfts, latencies, tokens, errors = [], [], [0], [0]
    lock = threading.Lock()

    def client(i):
        n = 0
        while time.monotonic() < stop_at:
            try:
                t, total, k = stream(args.url, {"prompt": ids(args.prompt_tokens, 100 + i * 1000 + n),
                                                "max_tokens": args.max_tokens, "temperature": 0.8, "seed": n})
                with lock:
                    ttfts.append(t)
                    latencies.append(total)
                    tokens[0] += k
            except Exception:
                with lock:
                    errors[0] += 1
            n += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0

    def pct(v, p):
        return sorted(v)[min(len(v) - 1, int(p / 100 * len(v)))] * 1e3 if v else float("nan")

    print(f"clients {args.clients}: {len(latencies)} requests, {errors[0]} errors, {tokens[0] / wall:.1f} tok/s generated; "
          f"ttft p50 {pct(ttfts, 50):.0f} p90 {pct(ttfts, 90):.0f} ms; latency p50 {pct(latencies, 50):.0f} "
          f"p90 {pct(latencies, 90):.0f} p99 {pct(latencies, 99):.0f} ms")
    if args.rss_pid:
        end = rss_kib(args.rss_pid)
        warm = rss.get("warm", end)
        growth = (end - warm) / warm if warm else 0
        print(f"server RSS: {warm / 1024:.1f} MiB after warm-up, {end / 1024:.1f} MiB at the end "
              f"({growth * 100:+.1f}%), peak {rss.get('peak', end) / 1024:.1f} MiB")
        if errors[0] or not latencies or growth > args.rss_growth:
            raise SystemExit(f"load test failed: {errors[0]} errors, {len(latencies)} requests, RSS growth "
                             f"{growth * 100:+.1f}% (limit {args.rss_growth * 100:.0f}%)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ttft")
    a.add_argument("--system-tokens", type=int, default=2000, help="tokens in the shared prefix")
    b = sub.add_parser("concurrency")
    b.add_argument("--clients", type=int, default=4)
    b.add_argument("--seconds", type=float, default=30)
    b.add_argument("--prompt-tokens", type=int, default=64)
    b.add_argument("--max-tokens", type=int, default=64)
    b.add_argument("--rss-pid", type=int, default=0, help="server process to watch (the load test)")
    b.add_argument("--rss-growth", type=float, default=0.10, help="RSS growth after warm-up that fails it")
    args = ap.parse_args()
    {"ttft": ttft, "concurrency": concurrency}[args.cmd](args)


if __name__ == "__main__":
    main()
