// Multi-head latent attention (DeepSeek-V2/V3) on the CPU: the compressed
// cache (latent + RoPE part per position, no V) and attention over it, by
// decompressing K/V through kv_b_proj (naive, the reference) or by folding
// kv_b_proj into the query and the output (absorbed). graph/ir.h: MlaParams.
#pragma once
#include <cstdint>

#include "backend/cpu/kv_cache.h"
#include "core/thread_pool.h"
#include "format/weight_view.h"
#include "graph/ir.h"

namespace moeflux::cpu {

// Row r of W as f32, whatever W's type (float, GGML block, MLX affine).
void weight_row(const WeightView& W, int64_t r, float* out);

// Stores [latent[t] | rope[t]] at positions[t] of state `state`.
void latent_append(KvCache& kv, uint32_t state, const int32_t* positions, int T, const float* latent, int latent_width,
                   const float* rope, int rope_width);

// out [T, heads * v_dim] from q [T, heads * (nope_dim + rope_dim)] over the
// cached positions <= positions[t]. The path is m.path (Auto: the one with
// fewer multiply-adds for T tokens; absorbed for decode).
void mla_attention(ThreadPool& pool, const MlaParams& m, KvCache& kv, uint32_t state, const int32_t* positions, int T,
                   const float* q, float* out);

}  // namespace moeflux::cpu
