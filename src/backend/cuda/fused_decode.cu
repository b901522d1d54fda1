#include "backend/cuda/fused_decode.h"

namespace moeflux::cuda {

namespace {

constexpr int kHeadWarps = 4;

// Warp per head: heads [0, heads) of q, then [heads, heads + kv_heads) of
// k; the last block's warps also copy v into the cache. The norm is
// ops.cu's warp-per-group RMSNorm and the rotation its rope_kernel, with
// the same arithmetic in the same order.
__global__ void __launch_bounds__(kHeadWarps * 32)
    qk_rope_append_kernel(QkRopeAppend p, KvView kv, const int32_t* positions) {
  __shared__ float sh[kHeadWarps][256];
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int head = int(blockIdx.x) * kHeadWarps + warp;
  const int hd = p.head_dim, pos = positions[0];
  float* kd = kv.pages[pos / kv.block_tokens] + kv.key_off + int64_t(pos % kv.block_tokens) * kv.key_width;
  if (blockIdx.x == gridDim.x - 1) {
    float* vd = kv.pages[pos / kv.block_tokens] + kv.value_off + int64_t(pos % kv.block_tokens) * kv.value_width;
    for (int i = threadIdx.x; i < kv.value_width; i += blockDim.x) vd[i] = p.v[i];
  }
  if (head >= p.heads + p.kv_heads) return;
  const bool is_q = head < p.heads;
  const int h = is_q ? head : head - p.heads;
  const float* in = (is_q ? p.q_in : p.k_in) + int64_t(h) * hd;
  float* out = is_q ? p.q_out + int64_t(h) * hd : p.k_out ? p.k_out + int64_t(h) * hd : nullptr;
  const float* w = is_q ? p.qw : p.kw;
  float* x = sh[warp];
  if (w) {
    const int64_t wn = is_q ? p.qwn : p.kwn;
    const float eps = is_q ? p.q_eps : p.k_eps;
    float ss = 0.f;
    for (int i = lane; i < hd; i += 32) ss += in[i] * in[i];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = 1.0f / sqrtf(ss / float(hd) + eps);
    for (int i = lane; i < hd; i += 32) x[i] = w[(int64_t(h) * hd + i) % wn] * (in[i] * inv);
  } else {
    for (int i = lane; i < hd; i += 32) x[i] = in[i];
  }
  __syncwarp();
  const int half = p.rope.rot_dims / 2;
  for (int q = lane; q < half; q += 32) {  // each lane rotates its own pairs in place
    const float inv_freq = 1.0f / powf(p.rope.theta, float(2 * q) / float(2 * half));
    const float ang = float(pos) * inv_freq;
    float sn, cs;
    sincosf(ang, &sn, &cs);
    const int ia = p.rope.interleaved ? 2 * q : q, ib = p.rope.interleaved ? 2 * q + 1 : q + half;
    const float a = x[ia], b = x[ib];
    x[ia] = a * cs - b * sn;
    x[ib] = b * cs + a * sn;
  }
  __syncwarp();
  if (out)
    for (int i = lane; i < hd; i += 32) out[i] = x[i];
  if (!is_q)
    for (int i = lane; i < hd; i += 32) kd[int64_t(h) * hd + i] = x[i];
}

constexpr int kNormThreads = 256;  // as ops.cu's block-per-row RMSNorm
constexpr int kNormPreload = 16;   // elements per thread held in registers (rows up to 4,096)

__global__ void __launch_bounds__(kNormThreads)
    add_rms_norm_kernel(const float* a, const float* b, float* r, int width, const float* w, int64_t wn, float eps,
                        float* y) {
  const int64_t base = int64_t(blockIdx.x) * width;
  const int lane = threadIdx.x & 31;
  float ss = 0.f;
  float v[kNormPreload];
  if (width <= kNormThreads * kNormPreload) {
    // Every load first, then the stores: r may be a or b (in place), so the
    // compiler would otherwise wait for each load before the next store
    // (seen: 9.2 us for 2,048 elements, one L2 round trip per element pair).
#pragma unroll
    for (int j = 0; j < kNormPreload; ++j) {
      const int i = int(threadIdx.x) + j * kNormThreads;
      v[j] = i < width ? a[base + i] + b[base + i] : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kNormPreload; ++j) {
      const int i = int(threadIdx.x) + j * kNormThreads;
      if (i < width) {
        r[base + i] = v[j];
        ss += v[j] * v[j];
      }
    }
  } else {
    for (int i = threadIdx.x; i < width; i += kNormThreads) {
      const float v = a[base + i] + b[base + i];
      r[base + i] = v;
      ss += v * v;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  __shared__ float part[kNormThreads / 32];
  if (lane == 0) part[threadIdx.x / 32] = ss;
  __syncthreads();
  ss = 0.f;
  for (int i = 0; i < kNormThreads / 32; ++i) ss += part[i];
  const float inv = 1.0f / sqrtf(ss / float(width) + eps);
  if (width <= kNormThreads * kNormPreload) {
    float wv[kNormPreload];
#pragma unroll
    for (int j = 0; j < kNormPreload; ++j) {
      const int i = int(threadIdx.x) + j * kNormThreads;
      wv[j] = i < width ? w[i % wn] : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kNormPreload; ++j) {
      const int i = int(threadIdx.x) + j * kNormThreads;
      if (i < width) y[base + i] = wv[j] * (v[j] * inv);
    }
    return;
  }
  // Each thread reads back the sums it wrote itself: no barrier needed.
  for (int i = threadIdx.x; i < width; i += kNormThreads) y[base + i] = w[i % wn] * (r[base + i] * inv);
}

}  // namespace

void qk_rope_append(const QkRopeAppend& p, const KvView& kv, const int32_t* positions, cudaStream_t s) {
  const int blocks = (p.heads + p.kv_heads + kHeadWarps - 1) / kHeadWarps;
  qk_rope_append_kernel<<<blocks, kHeadWarps * 32, 0, s>>>(p, kv, positions);
}

void add_rms_norm(const float* a, const float* b, float* r, int T, int width, const float* w, int64_t wn, float eps,
                  float* y, cudaStream_t s) {
  if (T == 0) return;
  add_rms_norm_kernel<<<T, kNormThreads, 0, s>>>(a, b, r, width, w, wn, eps, y);
}

}  // namespace moeflux::cuda
