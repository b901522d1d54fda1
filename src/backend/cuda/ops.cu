#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/formats.cuh"
#include "backend/cuda/ops.h"

namespace moeflux::cuda {

namespace {

unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

// One thread per 32-element chunk of an output row; the format is chosen at
// run time (embedding is one row per token: not worth a kernel per format).
__global__ void embed_kernel(DevMat table, const int32_t* tokens, int T, float* y) {
  const int64_t chunks = (table.cols + 31) / 32;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= chunks * T) return;
  const int t = int(i / chunks), c = int(i % chunks);
  float v[32];
  switch (table.dtype) {
#define MOEFLUX_DEQ(D) \
  case DType::D: deq_chunk<DType::D>(table, tokens[t], c, v); break;
    MOEFLUX_DEQ(F32)
    MOEFLUX_DEQ(F16)
    MOEFLUX_DEQ(BF16)
    MOEFLUX_DEQ(Q4_0)
    MOEFLUX_DEQ(Q4_1)
    MOEFLUX_DEQ(Q5_0)
    MOEFLUX_DEQ(Q5_1)
    MOEFLUX_DEQ(Q8_0)
    MOEFLUX_DEQ(Q2_K)
    MOEFLUX_DEQ(Q3_K)
    MOEFLUX_DEQ(Q4_K)
    MOEFLUX_DEQ(Q5_K)
    MOEFLUX_DEQ(Q6_K)
    MOEFLUX_DEQ(MXFP4)
    MOEFLUX_DEQ(MLX)
#undef MOEFLUX_DEQ
    default: return;
  }
  float* o = y + int64_t(t) * table.cols + int64_t(c) * 32;
  const int64_t n = table.cols - int64_t(c) * 32;
  for (int j = 0; j < 32 && j < n; ++j) o[j] = v[j];
}

// One warp per group (q/k norms: many small groups), or one block of
// kNormThreads per group (the hidden state: one wide row per token).
constexpr int kNormThreads = 256;
template <bool kBlock>
__global__ void rms_norm_kernel(const float* x, int groups, int group, const float* w, int64_t wn, float eps,
                                int width, float w_off, float* y) {
  const int g = kBlock ? int(blockIdx.x) : int(blockIdx.x) * (blockDim.x / 32) + int(threadIdx.x / 32);
  const int lane = threadIdx.x & 31;
  if (g >= groups) return;
  const int per_row = width / group;
  const int64_t base = int64_t(g / per_row) * width + int64_t(g % per_row) * group;
  const int g0 = (g % per_row) * group;
  const int tid = kBlock ? int(threadIdx.x) : lane, nt = kBlock ? int(blockDim.x) : 32;
  float ss = 0.f;
  for (int i = tid; i < group; i += nt) ss += x[base + i] * x[base + i];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if constexpr (kBlock) {
    __shared__ float part[kNormThreads / 32];
    if (lane == 0) part[threadIdx.x / 32] = ss;
    __syncthreads();
    ss = 0.f;
    for (int i = 0; i < kNormThreads / 32; ++i) ss += part[i];
  }
  const float inv = 1.0f / sqrtf(ss / float(group) + eps);
  for (int i = tid; i < group; i += nt) y[base + i] = (w[(g0 + i) % wn] + w_off) * (x[base + i] * inv);
}

// One thread per rotated pair. The rotated dims start at `offset` of each
// head; YaRN blends each frequency between its interpolated and
// extrapolated values and scales cos and sin (graph/ir.h: RopeYarn).
__global__ void rope_kernel(float* x, int T, int width, int head_dim, int half, int offset, float theta,
                            bool interleaved, RopeYarn yarn, const int32_t* positions) {
  const int heads = width / head_dim;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(T) * heads * half) return;
  const int p = int(i % half);
  const int h = int((i / half) % heads);
  const int t = int(i / (int64_t(half) * heads));
  // As transformers computes it: f32 inverse frequency (and YaRN's blend,
  // in its order), f32 angle.
  const float pos_freq = powf(theta, float(2 * p) / float(2 * half));
  float inv_freq = 1.0f / pos_freq;
  if (yarn.factor != 1.0f) {
    const float interpolated = 1.0f / (yarn.factor * pos_freq);
    const float high = yarn.high == yarn.low ? yarn.high + 0.001f : yarn.high;
    const float ramp = fminf(fmaxf((float(p) - yarn.low) / (high - yarn.low), 0.0f), 1.0f);
    const float extra = 1.0f - ramp;
    inv_freq = interpolated * (1.0f - extra) + inv_freq * extra;
  }
  const float ang = float(positions[t]) * inv_freq;
  float sn, cs;
  sincosf(ang, &sn, &cs);
  if (yarn.attention_factor != 1.0f) {
    sn *= yarn.attention_factor;
    cs *= yarn.attention_factor;
  }
  float* v = x + int64_t(t) * width + int64_t(h) * head_dim + offset;
  const int ia = interleaved ? 2 * p : p, ib = interleaved ? 2 * p + 1 : p + half;
  const float a = v[ia], b = v[ib];
  v[ia] = a * cs - b * sn;
  v[ib] = b * cs + a * sn;
}

__global__ void clamp_kernel(float* x, int64_t n, float limit) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = fminf(fmaxf(x[i], -limit), limit);
}
__global__ void add_kernel(const float* a, const float* b, float* out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}
__global__ void swiglu_kernel(const float* g, const float* u, float* out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
__global__ void bias_kernel(float* y, const float* bias, int64_t n, int N) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] += bias[i % N];
}
}  // namespace

void embed(const DevMat& table, const int32_t* tokens, int T, float* y, cudaStream_t s) {
  const int64_t n = (table.cols + 31) / 32 * T;
  if (n == 0) return;
  embed_kernel<<<blocks_for(n, 128), 128, 0, s>>>(table, tokens, T, y);
}

void rms_norm(const float* x, int T, int width, int group, const float* weight, int64_t wn, float eps, float* y,
              cudaStream_t s, float weight_offset) {
  const int groups = T * (width / group);
  if (groups == 0) return;
  if (group > 256)
    rms_norm_kernel<true><<<groups, kNormThreads, 0, s>>>(x, groups, group, weight, wn, eps, width, weight_offset, y);
  else
    rms_norm_kernel<false><<<blocks_for(groups, 4), 128, 0, s>>>(x, groups, group, weight, wn, eps, width, weight_offset, y);
}

void rope(float* x, int T, int width, const RopeParams& p, const int32_t* positions, cudaStream_t s) {
  const int half = p.rot_dims / 2;
  const int64_t n = int64_t(T) * (width / p.head_dim) * half;
  if (n == 0) return;
  rope_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, T, width, p.head_dim, half, p.offset, p.theta, p.interleaved, p.yarn,
                                                    positions);
}

void clamp(float* x, int64_t n, float limit, cudaStream_t s) {
  if (n == 0) return;
  clamp_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, n, limit);
}
void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n, 256), 256, 0, s>>>(a, b, out, n);
}
void swiglu(const float* g, const float* u, float* out, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  swiglu_kernel<<<blocks_for(n, 256), 256, 0, s>>>(g, u, out, n);
}
void add_bias(float* y, const float* bias, int T, int N, cudaStream_t s) {
  const int64_t n = int64_t(T) * N;
  if (n == 0) return;
  bias_kernel<<<blocks_for(n, 256), 256, 0, s>>>(y, bias, n, N);
}
}  // namespace moeflux::cuda
