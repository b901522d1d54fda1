// Kernels that do the work of several graph ops in one launch, for the
// op sequences every attention layer has (the executor matches them, see
// CudaExecutor::run_fused). Each gives the same values as the ops it
// replaces, computed in the same order (bit for bit), so a fused step and
// an unfused one agree exactly; fewer launches is all they change.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/kv_cache.h"
#include "graph/ir.h"

namespace moeflux::cuda {

// One token's q/k per-head RMSNorm (qw/kw null: none), RoPE and KV append:
// q_out = rope(norm(q_in)), k_out = rope(norm(k_in)); k_out and v go to
// position positions[0] of kv. Heads of head_dim <= 256 elements; RoPE at
// offset 0 without YaRN. q_in may be q_out (in place), k_in k_out; k_out
// may be null (no op reads the rotated k but the KV append: the executor
// then lets its slot be another buffer's, e.g. q_in's).
struct QkRopeAppend {
  const float *q_in, *k_in, *v;
  float *q_out, *k_out;
  const float *qw, *kw;  // norm weights or null
  int64_t qwn, kwn;      // their lengths
  float q_eps, k_eps;
  int heads, kv_heads, head_dim;
  RopeParams rope;
};
void qk_rope_append(const QkRopeAppend& p, const KvView& kv, const int32_t* positions, cudaStream_t s);

// r = a + b and y = rmsnorm(r) * w over rows of `width` (one group per
// row, width > 256: the block-per-row case of ops.cu's rms_norm).
void add_rms_norm(const float* a, const float* b, float* r, int T, int width, const float* w, int64_t wn, float eps,
                  float* y, cudaStream_t s);

}  // namespace moeflux::cuda
