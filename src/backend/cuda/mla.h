// Multi-head latent attention (DeepSeek-V2/V3) on the device, and the
// column slice its graph uses: the compressed cache keeps one row of
// [latent | rope part] per position in the KV pages (a LatentAttention
// state: key_width kv_lora_rank + rope_dim, no value), and attention runs
// over the latent itself by folding kv_b_proj into the query and the
// output (the "absorbed" form of backend/cpu/mla_attention.cpp; the same
// function as decompressing K and V, for every token count). kv_b_proj is
// read in its stored format, 32 elements at a time (formats.cuh).
#pragma once
#include <cuda_runtime.h>

#include "backend/cuda/dev_types.h"
#include "backend/cuda/kv_cache.h"
#include "graph/ir.h"

namespace moeflux::cuda {

// out [T, width] = columns [offset, offset + width) of in [T, in_width].
void slice(const float* in, int T, int in_width, int offset, int width, float* out, cudaStream_t s);
// Stores [latent[t] | rope[t]] at positions[t] of the latent state `kv`
// (key_width lw + rw, checked by the caller).
void latent_append(const KvView& kv, const int32_t* positions, int T, const float* latent, int lw, const float* rope,
                   int rw, cudaStream_t s);
// out [T, heads * v_dim] from q [T, heads * (nope_dim + rope_dim)] over the
// cached positions <= positions[t] (read on the device: a decode step is
// capturable at any context length). q_lat and o_lat are scratch of
// T * heads * kv_lora_rank floats each; kv_lora_rank <= kMaxMlaLatent
// (the kernels keep a few rows of it per block in shared memory).
inline constexpr int kMaxMlaLatent = 1024;
void mla_attention(const MlaParams& m, const DevMat& kv_b, const KvView& kv, const int32_t* positions, int T,
                   const float* q, float* q_lat, float* o_lat, float* out, cudaStream_t s);

}  // namespace moeflux::cuda
