#!/bin/bash
# Runs the CUDA tests on a GPU machine, from the repository root:
#   tests/backend/run_gpu_tests.sh BIN_DIR OUT_DIR [gtest filter]
# BIN_DIR holds test_backend (and moeflux), plus lib/ with the shared
# libraries this build machine links that the GPU machine may lack (the
# C++ runtime and the CUDA libraries are taken from the GPU machine).
# Logs go to OUT_DIR. Fixtures are read from this checkout's tests/fixtures.
# SANITIZE=1 reruns a few tests under compute-sanitizer (SANITIZE_FILTER: which).
set -u -o pipefail
BIN=${1:?bin dir}
OUT=${2:?out dir}
FILTER=${3:-*}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MOEFLUX_FIXTURES="$PWD/tests/fixtures"
export MOEFLUX_TEST_BACKENDS=cpu,cuda
{ nvidia-smi; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv; } \
  > "$OUT/nvidia-smi.txt" 2>&1
head -12 "$OUT/nvidia-smi.txt"
ldd "$BIN/test_backend" | grep -E "not found|cuda|cublas" | tee "$OUT/ldd.txt"
rc=0
"$BIN/test_backend" --gtest_filter="$FILTER" 2>&1 | tee "$OUT/test_backend.log" | \
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error|rel|Expected|Which is|actual|tolerance" | head -150 || rc=1
tail -5 "$OUT/test_backend.log"
grep -q "FAILED" "$OUT/test_backend.log" && rc=1
if [ "${SANITIZE:-0}" = 1 ] && command -v compute-sanitizer > /dev/null; then
  compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 "$BIN/test_backend" \
    --gtest_filter="${SANITIZE_FILTER:-Backends/OpHarness.*/cuda:CudaOracle.PrefillAndDecodeMatchTransformers/qwen2_moe_f32:CudaGguf.*/Q4_K_M}" \
    > "$OUT/memcheck.log" 2>&1
  echo "memcheck exit $?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/memcheck.log" | tail -5
fi
exit $rc
