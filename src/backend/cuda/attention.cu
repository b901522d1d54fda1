#include "backend/cuda/attention.h"

#include <cmath>


namespace moeflux::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kLaneDims = kMaxHeadDim / 32;  // head elements per lane

__device__ __forceinline__ const float* key_at(const KvView& kv, int pos) {
  return kv.pages[pos / kv.block_tokens] + kv.key_off + int64_t(pos % kv.block_tokens) * kv.key_width;
}
__device__ __forceinline__ const float* value_at(const KvView& kv, int pos) {
  return kv.pages[pos / kv.block_tokens] + kv.value_off + int64_t(pos % kv.block_tokens) * kv.value_width;
}

__global__ void kv_append_kernel(KvView kv, const int32_t* positions, int T, const float* k, const float* v) {
  const int t = blockIdx.x;
  const int pos = positions[t];
  float* kd = kv.pages[pos / kv.block_tokens] + kv.key_off + int64_t(pos % kv.block_tokens) * kv.key_width;
  float* vd = kv.pages[pos / kv.block_tokens] + kv.value_off + int64_t(pos % kv.block_tokens) * kv.value_width;
  for (int i = threadIdx.x; i < kv.key_width; i += blockDim.x) kd[i] = k[int64_t(t) * kv.key_width + i];
  for (int i = threadIdx.x; i < kv.value_width; i += blockDim.x) vd[i] = v[int64_t(t) * kv.value_width + i];
}

// Merges the splits' partial sums of (head h, token t), one thread per
// element. Reads through L2 (__ldcg): other blocks of the same launch may
// have written them.
__device__ void merge_head(const float* partial, float* out, int h, int t, int heads, int head_dim, int splits) {
  const float* pp = partial + (int64_t(t) * heads + h) * splits * (head_dim + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, __ldcg(pp + s * (head_dim + 2)));
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float L = 0.f, a = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float* ps = pp + s * (head_dim + 2);
      const float m = __ldcg(ps);
      const float f = m == -INFINITY ? 0.f : expf(m - M);
      L += __ldcg(ps + 1) * f;
      a += __ldcg(ps + 2 + d) * f;
    }
    out[int64_t(t) * heads * head_dim + int64_t(h) * head_dim + d] = a / L;
  }
}

// Block (head, token, split); each warp runs an online softmax over every
// kWarps-th position of the split's range, one position at a time (lanes
// split the head's elements), then the warps' sums are merged.
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(KvView kv, const int32_t* positions, const float* q, float* out, int heads, int kv_heads,
                     int head_dim, float scale, int window, int splits, float* partial, unsigned* done) {
  const int h = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int kh = h / (heads / kv_heads);
  const int last = positions[t];
  const int first = window > 0 ? max(0, last - window + 1) : 0;
  const int len = last - first + 1;
  const int chunk = (len + splits - 1) / splits;
  const int s0 = first + split * chunk, s1 = min(last + 1, s0 + chunk);

  const float* qh = q + int64_t(t) * heads * head_dim + int64_t(h) * head_dim;
  float qv[kLaneDims], acc[kLaneDims];
#pragma unroll
  for (int j = 0; j < kLaneDims; ++j) {
    const int d = lane + 32 * j;
    qv[j] = d < head_dim ? qh[d] : 0.f;
    acc[j] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int p = s0 + warp; p < s1; p += kWarps) {
    const float* kp = key_at(kv, p) + kh * head_dim;
    float d = 0.f;
#pragma unroll
    for (int j = 0; j < kLaneDims; ++j)
      if (lane + 32 * j < head_dim) d += qv[j] * kp[lane + 32 * j];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
    const float sc = d * scale;
    float w;
    if (sc > m) {
      const float corr = expf(m - sc);
      l *= corr;
#pragma unroll
      for (int j = 0; j < kLaneDims; ++j) acc[j] *= corr;
      m = sc;
      w = 1.f;
    } else {
      w = expf(sc - m);
    }
    l += w;
    const float* vp = value_at(kv, p) + kh * head_dim;
#pragma unroll
    for (int j = 0; j < kLaneDims; ++j)
      if (lane + 32 * j < head_dim) acc[j] += w * vp[lane + 32 * j];
  }
  __shared__ float sm[kWarps], sl[kWarps], sacc[kWarps][kMaxHeadDim];
  if (lane == 0) {
    sm[warp] = m;
    sl[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < kLaneDims; ++j)
    if (lane + 32 * j < head_dim) sacc[warp][lane + 32 * j] = acc[j];
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm[w]);
  float L = 0.f, f[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    f[w] = sm[w] == -INFINITY ? 0.f : expf(sm[w] - M);
    L += sl[w] * f[w];
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float a = 0.f;
    for (int w = 0; w < kWarps; ++w) a += sacc[w][d] * f[w];
    if (splits == 1) {
      out[int64_t(t) * heads * head_dim + int64_t(h) * head_dim + d] = a / L;
    } else {
      float* pp = partial + ((int64_t(t) * heads + h) * splits + split) * (head_dim + 2);
      if (d == 0) {
        pp[0] = M;
        pp[1] = L;
      }
      pp[2 + d] = a;
    }
  }
  // With `done` (a counter per (token, head), zero, left zero), the last
  // split block to finish merges, instead of a second kernel.
  if (splits == 1 || !done) return;
  __shared__ bool merger;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned* c = done + int64_t(t) * heads + h;
    merger = atomicAdd(c, 1u) == unsigned(splits) - 1;
    if (merger) *c = 0;
  }
  __syncthreads();
  if (!merger) return;
  __threadfence();
  merge_head(partial, out, h, t, heads, head_dim, splits);
}

// Merges the splits' partial sums: block (head, token).
__global__ void attention_merge_kernel(const float* partial, float* out, int heads, int head_dim, int splits) {
  merge_head(partial, out, int(blockIdx.x), int(blockIdx.y), heads, head_dim, splits);
}

}  // namespace

void kv_append(const KvView& kv, const int32_t* positions, int T, const float* k, const float* v, cudaStream_t s) {
  if (T == 0) return;
  kv_append_kernel<<<T, 128, 0, s>>>(kv, positions, T, k, v);
}

void attention(const AttentionParams& p, const KvView& kv, const int32_t* positions, int T, const float* q, float* out,
               int splits, float* partial, cudaStream_t s, unsigned* done) {
  if (T == 0) return;
  const int window = p.window ? *p.window : 0;
  attention_kernel<<<dim3(unsigned(p.heads), unsigned(T), unsigned(splits)), kWarps * 32, 0, s>>>(
      kv, positions, q, out, p.heads, p.kv_heads, p.head_dim, p.scale, window, splits, partial, done);
  if (splits > 1 && !done) {
    attention_merge_kernel<<<dim3(unsigned(p.heads), unsigned(T)), 128, 0, s>>>(partial, out, p.heads, p.head_dim,
                                                                               splits);
  }
}

}  // namespace moeflux::cuda
