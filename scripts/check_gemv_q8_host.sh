#!/bin/bash
# Checks, on a machine without a GPU, the int8 decode GEMV's per-format dot
# products (src/backend/cuda/gemv_q8.cu, compiled as host code) against the
# reference dequantizers: random rows of every format it reads, the sum of
# its 32-weight units against sum(dequant(w) * int8 x) in double.
#   scripts/check_gemv_q8_host.sh [BUILD_DIR]   (a configured build with CUDA)
set -euo pipefail
B=${1:-build}
cmake --build "$B" --target moeflux_engine moeflux_quant moeflux_core moeflux_gguf moeflux_io > /dev/null
nvcc -O1 -std=c++20 -Isrc -Iinclude scripts/check_gemv_q8_host.cu -o "$B/check_gemv_q8_host" \
  -Xlinker --start-group "$B"/libmoeflux_engine.a "$B"/libmoeflux_quant.a "$B"/libmoeflux_core.a \
  "$B"/libmoeflux_gguf.a "$B"/libmoeflux_io.a -Xlinker --end-group -lhwy -lfmt
"$B/check_gemv_q8_host"
