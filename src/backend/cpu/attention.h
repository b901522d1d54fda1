#pragma once
#include <cstdint>

#include "backend/cpu/kv_cache.h"
#include "core/thread_pool.h"
#include "graph/ir.h"

namespace moeflux::cpu {

// Stores rows t of k [T, key_width] and v [T, value_width] at positions[t]
// of layer state `state`.
void kv_append(KvCache& kv, uint32_t state, const int32_t* positions, int T, const float* k, const float* v);

// Causal GQA attention of q [T, heads * head_dim] over every cached
// position <= positions[t] of `state` (within the window, if any), with
// each head's sink logit in its softmax when s.sinks is set.
void attention(ThreadPool& pool, const AttentionParams& s, KvCache& kv, uint32_t state, const int32_t* positions,
               int T, const float* q, float* out);

}  // namespace moeflux::cpu
