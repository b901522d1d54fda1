#!/usr/bin/env bash
# Serving throughput and latency at several concurrencies: moeflux serve
# with decode batching, without it, and llama-server, on the same GGUF file,
# alternated per concurrency (BENCHMARKS.md, "serve: concurrency").
#   scripts/bench_serve_compare.sh MOEFLUX LLAMA_SERVER|- MODEL.gguf THREADS SECONDS CLIENTS...
# LLAMA_SERVER "-" skips llama-server; SERVE_ARGS adds options to moeflux
# serve (e.g. "--device cpu"). Prints one line per run.
set -euo pipefail
moeflux=$1 llama=$2 model=$3 threads=$4 seconds=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)
max_clients=0
for c in "$@"; do [ "$c" -gt "$max_clients" ] && max_clients=$c; done
log=$(mktemp -d)
pid=
stop_server() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap 'stop_server; rm -rf "$log"' EXIT
wait_up() {
  for _ in $(seq 600); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/health')" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { tail -20 "$log/server.log"; return 1; }
    sleep 0.2
  done
  return 1
}
start() {  # engine port
  case $1 in
    moeflux) "$moeflux" serve "$model" --port "$2" -t "$threads" --parallel "$max_clients" --max-queue 256 \
               --context 1024 ${SERVE_ARGS:-} >"$log/server.log" 2>&1 & ;;
    moeflux-nobatch) "$moeflux" serve "$model" --port "$2" -t "$threads" --parallel "$max_clients" --max-queue 256 \
               --context 1024 --no-batch-decode ${SERVE_ARGS:-} >"$log/server.log" 2>&1 & ;;
    llama-server) "$llama" -m "$model" --port "$2" -t "$threads" -np "$max_clients" -c $((1024 * max_clients)) \
               --no-warmup >"$log/server.log" 2>&1 & ;;
  esac
  pid=$!
  wait_up "$2"
}
engines=(moeflux moeflux-nobatch)
[ "$llama" != "-" ] && engines+=(llama-server)
port=18080
for c in "$@"; do
  for e in "${engines[@]}"; do
    port=$((port + 1))
    start "$e" "$port"
    # A short warm-up round, then the measured one.
    python3 "$here/bench_serve.py" --url "http://127.0.0.1:$port" concurrency --clients "$c" --seconds 3 \
      --prompt-tokens 64 --max-tokens 64 >/dev/null
    printf '%-16s ' "$e"
    python3 "$here/bench_serve.py" --url "http://127.0.0.1:$port" concurrency --clients "$c" --seconds "$seconds" \
      --prompt-tokens 64 --max-tokens 64
    stop_server
  done
done
