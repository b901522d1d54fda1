// The elementwise and row-wise ops of the graph on the device (f32
// activations), each one kernel launch on the caller's stream.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/dev_types.h"
#include "graph/ir.h"

namespace moeflux::cuda {

// y[t] = row tokens[t] of `table` (any weight format), as f32. Token ids
// were checked against the table on the host.
void embed(const DevMat& table, const int32_t* tokens, int T, float* y, cudaStream_t s);
// Each run of `group` elements of the [T, width] rows scaled to unit RMS,
// then by weight[i % wn] + weight_offset (f32; 1 for zero-centred weights).
void rms_norm(const float* x, int T, int width, int group, const float* weight, int64_t wn, float eps, float* y,
              cudaStream_t s, float weight_offset = 0.f);
// RoPE in place on [T, width] rows at positions[t] (graph/ir.h: RopeParams).
void rope(float* x, int T, int width, const RopeParams& p, const int32_t* positions, cudaStream_t s);
void clamp(float* x, int64_t n, float limit, cudaStream_t s);
void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t s);
void swiglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s);
// y[t, n] += bias[n] for [T, N] rows.
void add_bias(float* y, const float* bias, int T, int N, cudaStream_t s);

}  // namespace moeflux::cuda
