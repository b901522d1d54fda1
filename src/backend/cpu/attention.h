#pragma once
#include <cstdint>
#include <optional>

#include "core/thread_pool.h"
#include "runtime/kv_cache.h"

namespace moeflux::cpu {

struct AttentionShape {
  int heads, kv_heads, head_dim;
  std::optional<int> sliding_window;
};

// Stores k, v [T, kv_heads * head_dim] at positions[t] of `layer` in the
// cache, then computes causal GQA attention of q [T, heads * head_dim] over
// every cached position <= positions[t] (within the sliding window, if any).
void attention(ThreadPool& pool, const AttentionShape& s, KvCache& kv, int layer, const int32_t* positions, int T,
               const float* q, const float* k, const float* v, float* out);

}  // namespace moeflux::cpu
