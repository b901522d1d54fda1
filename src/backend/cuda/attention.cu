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

// Block (head, token, split); each warp runs an online softmax over every
// kWarps-th position of the split's range, one position at a time (lanes
// split the head's elements), then the warps' sums are merged.
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(KvView kv, const int32_t* positions, const float* q, float* out, int heads, int kv_heads,
                     int head_dim, float scale, int window, int splits, float* partial) {
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
}

// Merges the splits' partial sums: block (head, token), one thread per element.
__global__ void attention_merge_kernel(const float* partial, float* out, int heads, int head_dim, int splits) {
  const int h = blockIdx.x, t = blockIdx.y;
  const float* pp = partial + (int64_t(t) * heads + h) * splits * (head_dim + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, pp[s * (head_dim + 2)]);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float L = 0.f, a = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float* ps = pp + s * (head_dim + 2);
      const float f = ps[0] == -INFINITY ? 0.f : expf(ps[0] - M);
      L += ps[1] * f;
      a += ps[2 + d] * f;
    }
    out[int64_t(t) * heads * head_dim + int64_t(h) * head_dim + d] = a / L;
  }
}

}  // namespace

void kv_append(const KvView& kv, const int32_t* positions, int T, const float* k, const float* v, cudaStream_t s) {
  if (T == 0) return;
  kv_append_kernel<<<T, 128, 0, s>>>(kv, positions, T, k, v);
}

void attention(const AttentionParams& p, const KvView& kv, const int32_t* positions, int T, const float* q, float* out,
               int splits, float* partial, cudaStream_t s) {
  if (T == 0) return;
  const int window = p.window ? *p.window : 0;
  attention_kernel<<<dim3(unsigned(p.heads), unsigned(T), unsigned(splits)), kWarps * 32, 0, s>>>(
      kv, positions, q, out, p.heads, p.kv_heads, p.head_dim, p.scale, window, splits, partial);
  if (splits > 1) {
    attention_merge_kernel<<<dim3(unsigned(p.heads), unsigned(T)), 128, 0, s>>>(partial, out, p.heads, p.head_dim,
                                                                               splits);
  }
}

}  // namespace moeflux::cuda
