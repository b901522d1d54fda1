#!/bin/bash
# One self-contained GPU-machine run for the CUDA decode work (issue 13):
# the CUDA tests, the gpu-resident bench in several variants and a
# per-kernel profile of a decode step. From the repository root:
#   scripts/cuda_decode_run.sh BIN_DIR OUT_DIR
# BIN_DIR holds moeflux, test_backend and lib/ (tests/backend/run_gpu_tests.sh
# says what). Variants (VARIANTS="default old ..."): default, old
# (MOEFLUX_CUDA_INT8=0 MOEFLUX_CUDA_FUSE=0: the kernels before the int8
# GEMV and the fusions), nofuse, f32 (--f32-activations), p2048, ncu.
# Everything goes to OUT_DIR/run.log and OUT_DIR/ncu.csv (two files: the
# lent machine returns at most 8), the summary to stdout.
set -u
BIN=$(cd "${1:?bin dir}" && pwd)
OUT=${2:?out dir}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
LOG=$OUT/run.log
T0=$(date +%s)
t() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$LOG"
MODEL=/tmp/q3_8.gguf
( "$BIN/moeflux" synth --preset qwen3-30b-a3b --layers 8 --type q4_k_m -o $MODEL --force > /tmp/synth.log 2>&1 ) &
SP=$!
export MOEFLUX_FIXTURES="$PWD/tests/fixtures" MOEFLUX_TEST_BACKENDS=cpu,cuda
timeout "${TTEST:-240}" "$BIN/test_backend" --gtest_filter="${TESTS:-*Cuda*:*OpHarness*/cuda}" > /tmp/tests.log 2>&1
echo "tests rc $?" | tee -a "$LOG"
grep -E "^\[  (FAILED|PASSED) |Failure|decode mean KL" /tmp/tests.log | head -40 | tee -a "$LOG"
t tests; wait $SP; tail -1 /tmp/synth.log >> "$LOG"; t synth
bench() {  # NAME "ENV=.." "args"
  timeout 90 env X=1 $2 "$BIN/moeflux" bench $MODEL --device cuda ${BARGS:--p 512 -n 128} $3 --json > /tmp/b.json 2>> "$LOG"
  python3 -c "
import json,sys
j=json.load(open('/tmp/b.json'))
k=['prefill_tok_s','decode_tok_s','device_copy_bandwidth_gb_s','device_memory_floor_tok_s','decode_vs_device_floor']
print(sys.argv[1], {x: round(j[x],3) for x in k if x in j})" "$1" | tee -a "$LOG"
}
for v in ${VARIANTS:-default old p2048 ncu}; do
  case $v in
    default) bench default "" "";;
    old) bench old "MOEFLUX_CUDA_INT8=0 MOEFLUX_CUDA_FUSE=0" "";;
    nofuse) bench nofuse "MOEFLUX_CUDA_FUSE=0" "";;
    f32) bench f32 "" --f32-activations;;
    p2048) BARGS="-p 2048 -n 16" bench p2048 "" "";;
    ncu) MOEFLUX_CUDA_GRAPH=0 timeout 90 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
           "$BIN/moeflux" bench $MODEL --device cuda -p 8 -n 3 > "$OUT/ncu.csv" 2>> "$LOG"
         python3 - "$OUT/ncu.csv" <<'PY' | tee -a "$LOG"
import csv,sys,collections
rows=[r for r in csv.reader(open(sys.argv[1])) if len(r)>10]
h=rows[0]; ki,vi,gi=h.index('Kernel Name'),h.index('Metric Value'),h.index('Grid Size')
ks=[]
for r in rows[1:]:
  try: ks.append((r[ki].split('(')[0].split('<')[0][-36:],float(r[vi].replace(',','')),r[gi]))
  except ValueError: pass
step=ks[max(i for i,k in enumerate(ks) if 'embed' in k[0]):]
print('decode step: kernels',len(step),'GPU us',round(sum(k[1] for k in step)/1000,1))
for n,v,g in step: print(f'  {n:36s} {v/1000:8.2f} us grid {g}')
PY
         ;;
  esac
  t "$v"
done
