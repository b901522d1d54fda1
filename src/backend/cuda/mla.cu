#include "backend/cuda/formats.cuh"
#include "backend/cuda/mla.h"

namespace moeflux::cuda {

namespace {

unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

// Elements [32c, 32c + 32) of row `row` of w in any stored format. Not
// inlined: the format switch is compiled once for both kernels that read
// kv_b_proj.
__device__ __noinline__ void deq_any(const DevMat& w, int64_t row, int c, float* v) {
  switch (w.dtype) {
#define MOEFLUX_DEQ(D) \
  case DType::D: deq_chunk<DType::D>(w, row, c, v); return;
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
    default:
      for (int i = 0; i < 32; ++i) v[i] = 0.f;
  }
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ __forceinline__ const float* latent_row(const KvView& kv, int pos) {
  return kv.pages[pos / kv.block_tokens] + kv.key_off + int64_t(pos % kv.block_tokens) * kv.key_width;
}

__global__ void slice_kernel(const float* in, int T, int in_width, int offset, int width, float* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(T) * width) return;
  const int64_t t = i / width;
  out[i] = in[t * in_width + offset + i % width];
}

__global__ void latent_append_kernel(KvView kv, const int32_t* positions, const float* latent, int lw,
                                     const float* rope, int rw) {
  const int t = blockIdx.x;
  float* d = const_cast<float*>(latent_row(kv, positions[t]));
  for (int i = threadIdx.x; i < lw; i += blockDim.x) d[i] = latent[int64_t(t) * lw + i];
  for (int i = threadIdx.x; i < rw; i += blockDim.x) d[lw + i] = rope[int64_t(t) * rw + i];
}

// q_lat[t, h] = Wk_h^T q_nope[t, h] (Wk_h: kv_b rows [h(n+v), h(n+v)+n)):
// block (head, token); warp w sums the nope dims w, w + kAbsorbWarps, ...
// (lanes take 32-element chunks of the latent, so a warp reads a row of
// kv_b at once), then the warps' partial sums are added in order.
constexpr int kAbsorbWarps = 8;
__global__ void __launch_bounds__(kAbsorbWarps * 32)
    absorb_query_kernel(DevMat W, const float* q, int H, int n, int r, int v, int L, float* q_lat) {
  extern __shared__ float part[];  // [kAbsorbWarps][L]
  const int h = blockIdx.x, t = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const float* qh = q + (int64_t(t) * H + h) * (n + r);
  const int chunks = (L + 31) / 32;
  float acc[32], w[32];
  for (int c = lane; c < chunks; c += 32) {
#pragma unroll
    for (int j = 0; j < 32; ++j) acc[j] = 0.f;
    for (int d = warp; d < n; d += kAbsorbWarps) {
      deq_any(W, int64_t(h) * (n + v) + d, c, w);
      const float x = qh[d];
#pragma unroll
      for (int j = 0; j < 32; ++j) acc[j] += x * w[j];
    }
    const int m = min(32, L - c * 32);
    for (int j = 0; j < m; ++j) part[warp * L + c * 32 + j] = acc[j];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < L; i += blockDim.x) {
    float s = 0.f;
    for (int k = 0; k < kAbsorbWarps; ++k) s += part[k * L + i];
    q_lat[(int64_t(t) * H + h) * L + i] = s;
  }
}

// Block (head, token): each warp runs an online softmax over every
// kMlaWarps-th cached position (lanes split the latent), accumulating the
// weighted latent rows in shared memory; the warps are merged at the end.
// Scores are (q_lat . latent_p + q_rope . rope_p) * scale.
constexpr int kMlaWarps = 4;
__global__ void __launch_bounds__(kMlaWarps * 32)
    latent_attention_kernel(KvView kv, const int32_t* positions, const float* q, const float* q_lat, int H, int n,
                            int r, int L, float scale, float* o_lat) {
  extern __shared__ float sh[];  // q_lat [L], q_rope [r], acc [kMlaWarps][L], m, l [kMlaWarps]
  const int h = blockIdx.x, t = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  float* ql = sh;
  float* qr = ql + L;
  float* acc = qr + r;
  float* wm = acc + kMlaWarps * L;
  float* wl = wm + kMlaWarps;
  for (int i = threadIdx.x; i < L; i += blockDim.x) ql[i] = q_lat[(int64_t(t) * H + h) * L + i];
  for (int i = threadIdx.x; i < r; i += blockDim.x) qr[i] = q[(int64_t(t) * H + h) * (n + r) + n + i];
  for (int i = threadIdx.x; i < kMlaWarps * L; i += blockDim.x) acc[i] = 0.f;
  __syncthreads();
  float* a = acc + warp * L;
  float m = -INFINITY, l = 0.f;
  const int last = positions[t];
  for (int p = warp; p <= last; p += kMlaWarps) {
    const float* c = latent_row(kv, p);
    float d = 0.f;
    for (int i = lane; i < L; i += 32) d += ql[i] * c[i];
    for (int i = lane; i < r; i += 32) d += qr[i] * c[L + i];
    const float s = warp_sum(d) * scale;
    const float nm = fmaxf(m, s);
    const float rescale = expf(m - nm), w = expf(s - nm);
    l = l * rescale + w;
    for (int i = lane; i < L; i += 32) a[i] = a[i] * rescale + w * c[i];
    m = nm;
  }
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
  __syncthreads();
  float gm = -INFINITY;
  for (int w = 0; w < kMlaWarps; ++w) gm = fmaxf(gm, wm[w]);
  float gl = 0.f, f[kMlaWarps];
  for (int w = 0; w < kMlaWarps; ++w) {
    f[w] = wm[w] == -INFINITY ? 0.f : expf(wm[w] - gm);
    gl += wl[w] * f[w];
  }
  const float inv = 1.0f / gl;
  for (int i = threadIdx.x; i < L; i += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kMlaWarps; ++w) o += acc[w * L + i] * f[w];
    o_lat[(int64_t(t) * H + h) * L + i] = o * inv;
  }
}

// out[t, h, j] = Wv_h[j] . o_lat[t, h] (Wv_h: kv_b rows [h(n+v)+n, (h+1)(n+v))):
// one warp per output element, lanes over 32-element chunks of the latent.
__global__ void absorb_output_kernel(DevMat W, const float* o_lat, int T, int H, int n, int v, int L, float* out) {
  const int64_t wi = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (wi >= int64_t(T) * H * v) return;
  const int j = int(wi % v), h = int((wi / v) % H), t = int(wi / (int64_t(v) * H));
  const float* o = o_lat + (int64_t(t) * H + h) * L;
  const int chunks = (L + 31) / 32;
  float d = 0.f, w[32];
  for (int c = lane; c < chunks; c += 32) {
    deq_any(W, int64_t(h) * (n + v) + n + j, c, w);
    const int m = min(32, L - c * 32);
    for (int e = 0; e < m; ++e) d += w[e] * o[c * 32 + e];
  }
  d = warp_sum(d);
  if (lane == 0) out[(int64_t(t) * H + h) * v + j] = d;
}

}  // namespace

void slice(const float* in, int T, int in_width, int offset, int width, float* out, cudaStream_t s) {
  const int64_t n = int64_t(T) * width;
  if (n == 0) return;
  slice_kernel<<<blocks_for(n, 256), 256, 0, s>>>(in, T, in_width, offset, width, out);
}

void latent_append(const KvView& kv, const int32_t* positions, int T, const float* latent, int lw, const float* rope,
                   int rw, cudaStream_t s) {
  if (T == 0) return;
  latent_append_kernel<<<T, 128, 0, s>>>(kv, positions, latent, lw, rope, rw);
}

void mla_attention(const MlaParams& m, const DevMat& kv_b, const KvView& kv, const int32_t* positions, int T,
                   const float* q, float* q_lat, float* o_lat, float* out, cudaStream_t s) {
  if (T == 0) return;
  const int H = m.heads, n = m.nope_dim, r = m.rope_dim, v = m.v_dim, L = m.kv_lora_rank;
  absorb_query_kernel<<<dim3(unsigned(H), unsigned(T)), kAbsorbWarps * 32, size_t(kAbsorbWarps) * L * sizeof(float),
                        s>>>(kv_b, q, H, n, r, v, L, q_lat);
  const size_t shared = (size_t(L) * (1 + kMlaWarps) + size_t(r) + 2 * kMlaWarps) * sizeof(float);
  latent_attention_kernel<<<dim3(unsigned(H), unsigned(T)), kMlaWarps * 32, shared, s>>>(kv, positions, q, q_lat, H,
                                                                                         n, r, L, m.scale, o_lat);
  const int64_t on = int64_t(T) * H * v * 32;
  absorb_output_kernel<<<blocks_for(on, 128), 128, 0, s>>>(kv_b, o_lat, T, H, n, v, L, out);
}

}  // namespace moeflux::cuda
