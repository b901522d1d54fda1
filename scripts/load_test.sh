#!/usr/bin/env bash
# The server's load test (issue 16), loopback only: CLIENTS streaming
# clients for SECONDS against `moeflux serve` on the demo model; fails on
# any error, a crash, or resident memory growing more than 10 % after the
# warm-up (a leak). Prints throughput and latency percentiles.
#   scripts/load_test.sh BUILD_DIR [CLIENTS] [SECONDS] [extra serve options...]
set -euo pipefail
build=${1:?usage: load_test.sh BUILD_DIR [CLIENTS] [SECONDS] [serve options]}
clients=${2:-16}
seconds=${3:-20}
shift $(( $# < 3 ? $# : 3 ))
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$build/moeflux" demo --dir "$work/model" >"$work/demo.log" 2>&1 || { cat "$work/demo.log"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$build/moeflux" serve "$work/model" --port "$port" --parallel 4 --max-queue 64 "$@" >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.2
done
python3 "$here/bench_serve.py" --url "http://127.0.0.1:$port" concurrency --clients "$clients" \
  --seconds "$seconds" --prompt-tokens 48 --max-tokens 32 --rss-pid "$server_pid"
kill -0 "$server_pid" 2>/dev/null || { echo "the server died"; cat "$work/serve.log"; exit 1; }
echo "load test passed"
