// KV append and causal GQA attention over a session's device KV pages.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/kv_cache.h"
#include "graph/ir.h"

namespace moeflux::cuda {

// Rows t of k [T, key_width] and v [T, value_width] to positions[t].
void kv_append(const KvView& kv, const int32_t* positions, int T, const float* k, const float* v, cudaStream_t s);

// out [T, heads * head_dim] = attention of q over positions <= positions[t]
// (within the window). `splits` > 1 divides each row's positions among that
// many blocks (decode: one query row, a long cache), whose partial softmax
// sums go through `partial` (T * heads * splits * (head_dim + 2) floats)
// and are merged by a second kernel. head_dim is at most kMaxHeadDim.
inline constexpr int kMaxHeadDim = 256;
// done: null, or T * heads counters (zero; left zero) with which the last
// split of each row merges in the same launch instead of a second kernel.
void attention(const AttentionParams& p, const KvView& kv, const int32_t* positions, int T, const float* q, float* out,
               int splits, float* partial, cudaStream_t s, unsigned* done = nullptr);

}  // namespace moeflux::cuda
