#include "backend/cuda/deltanet.h"

// Shapes are checked by the caller (executor_arch.cpp): fmt does not
// compile under nvcc.

namespace moeflux::cuda {

namespace {

unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
// torch.nn.functional.softplus (beta 1, threshold 20).
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

// The parts of a group, passed by value: where each starts in a group of
// `in` and in its output row, and which output it goes to.
struct SplitPlan {
  int parts, group_width;
  int width[kMaxSplitParts], in_at[kMaxSplitParts], out_at[kMaxSplitParts], out[kMaxSplitParts];
  float* outs[kMaxSplitParts];
  int out_width[kMaxSplitParts];
};

// One thread per element of a group's row.
__global__ void split_groups_kernel(const float* in, int T, int in_width, int groups, SplitPlan plan) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t per_row = int64_t(groups) * plan.group_width;
  if (i >= per_row * T) return;
  const int t = int(i / per_row);
  const int e = int(i % per_row);
  const int g = e / plan.group_width, j = e % plan.group_width;
  int p = 0;
  while (p + 1 < plan.parts && j >= plan.in_at[p + 1]) ++p;
  const int o = plan.out[p];
  plan.outs[o][int64_t(t) * plan.out_width[o] + plan.out_at[p] + int64_t(g) * plan.width[p] + (j - plan.in_at[p])] =
      in[int64_t(t) * in_width + e];
}

__global__ void sigmoid_mul_kernel(float* buf, const float* gate, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) buf[i] *= sigmoid(gate[i]);
}

// One thread per channel, walking the step's rows in order; the history's
// rows are rewritten oldest first, each after every read of it.
__global__ void causal_conv_kernel(const float* in, int T, int in_width, const float* w, int C, int K, float* hist,
                                   float* out) {
  const int c = int(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int H = K - 1;
  auto x = [&](int s) { return s < 0 ? hist[int64_t(H + s) * C + c] : in[int64_t(s) * in_width + c]; };
  for (int t = 0; t < T; ++t) {
    float acc = 0.f;
    for (int j = 0; j < K; ++j) acc += w[int64_t(c) * K + j] * x(t - H + j);
    out[int64_t(t) * C + c] = silu(acc);
  }
  // Row r of the new history is x(T - H + r): a history row r' = T + r > r
  // when that is before the step, so increasing r never reads a row
  // already rewritten.
  for (int r = 0; r < H; ++r) hist[int64_t(r) * C + c] = x(T - H + r);
}

// Block (value head, 32 value columns): one warp, thread j owning column j
// of the head's state S [key_dim, value_dim], in registers across the
// step's tokens when R >= key_dim (R = 0: read and written in place in
// device memory, column reads coalesced across the warp). Per token the
// warp loads q and k into shared memory and L2-normalises them (q also
// scaled), then runs the step form:
// S = exp(g) S; S += k (beta (v - S^T k))^T; out = S^T q.
constexpr int kRuleThreads = 32;
constexpr int kRuleRegisters = 128;  // key_dim of Qwen3-Next and Qwen3.5
template <int R>
__global__ void __launch_bounds__(kRuleThreads)
    gated_delta_rule_kernel(const float* qkv, const float* b, const float* a, int T, const float* a_log,
                            const float* dt_bias, DeltaRuleParams p, float* S, float* out) {
  extern __shared__ float sh[];  // q [dk], k [dk]
  const int Hk = p.key_heads, Hv = p.value_heads, dk = p.key_dim, dv = p.value_dim;
  const int h = blockIdx.x, lane = threadIdx.x;
  const int j = int(blockIdx.y) * kRuleThreads + lane;
  const bool live = j < dv;
  const int kh = h / (Hv / Hk);
  const int64_t width = int64_t(2 * Hk * dk + Hv * dv);
  float* q = sh;
  float* k = sh + dk;
  float* s = S + int64_t(h) * dk * dv;
  const float neg_a = -expf(a_log[h]), bias = dt_bias[h];
  float reg[R > 0 ? R : 1];
  if constexpr (R > 0) {
#pragma unroll
    for (int i = 0; i < R; ++i) reg[i] = live && i < dk ? s[int64_t(i) * dv + j] : 0.f;
  }
  for (int t = 0; t < T; ++t) {
    const float* row = qkv + int64_t(t) * width;
    __syncwarp();  // the previous token's q and k are read
    float qq = 0.f, kk = 0.f;
    for (int i = lane; i < dk; i += kRuleThreads) {
      const float x = row[int64_t(kh) * dk + i], y = row[int64_t(Hk + kh) * dk + i];
      q[i] = x;
      k[i] = y;
      qq += x * x;
      kk += y * y;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      qq += __shfl_xor_sync(0xffffffffu, qq, o);
      kk += __shfl_xor_sync(0xffffffffu, kk, o);
    }
    const float qs = 1.0f / sqrtf(qq + p.l2_eps), ks = 1.0f / sqrtf(kk + p.l2_eps);
    for (int i = lane; i < dk; i += kRuleThreads) {
      q[i] = q[i] * qs * p.scale;
      k[i] = k[i] * ks;
    }
    __syncwarp();
    if (!live) continue;
    const float decay = expf(neg_a * softplus(a[int64_t(t) * Hv + h] + bias));
    const float beta = sigmoid(b[int64_t(t) * Hv + h]);
    const float vj = row[int64_t(2 * Hk * dk) + int64_t(h) * dv + j];
    float kv = 0.f, o = 0.f;
    if constexpr (R > 0) {
#pragma unroll
      for (int i = 0; i < R; ++i)
        if (i < dk) {
          reg[i] *= decay;
          kv += reg[i] * k[i];
        }
      const float delta = (vj - kv) * beta;
#pragma unroll
      for (int i = 0; i < R; ++i)
        if (i < dk) {
          reg[i] += k[i] * delta;
          o += reg[i] * q[i];
        }
    } else {
      for (int i = 0; i < dk; ++i) {
        const float si = s[int64_t(i) * dv + j] * decay;
        s[int64_t(i) * dv + j] = si;
        kv += si * k[i];
      }
      const float delta = (vj - kv) * beta;
      for (int i = 0; i < dk; ++i) {
        const float si = s[int64_t(i) * dv + j] + k[i] * delta;
        s[int64_t(i) * dv + j] = si;
        o += si * q[i];
      }
    }
    out[int64_t(t) * Hv * dv + int64_t(h) * dv + j] = o;
  }
  if constexpr (R > 0) {
    if (live) {
#pragma unroll
      for (int i = 0; i < R; ++i)
        if (i < dk) s[int64_t(i) * dv + j] = reg[i];
    }
  }
}

// One warp per group.
__global__ void gated_rms_norm_kernel(const float* x, const float* gate, int groups, int group, int width,
                                      const float* w, int64_t wn, float eps, float* y) {
  const int g = int(blockIdx.x) * (blockDim.x / 32) + int(threadIdx.x / 32);
  const int lane = threadIdx.x & 31;
  if (g >= groups) return;
  const int per_row = width / group;
  const int64_t base = int64_t(g / per_row) * width + int64_t(g % per_row) * group;
  const int g0 = (g % per_row) * group;
  float ss = 0.f;
  for (int i = lane; i < group; i += 32) ss += x[base + i] * x[base + i];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float inv = 1.0f / sqrtf(ss / float(group) + eps);
  for (int i = lane; i < group; i += 32)
    y[base + i] = w[(g0 + i) % wn] * (x[base + i] * inv) * silu(gate[base + i]);
}

}  // namespace

void split_groups(const float* in, int T, int in_width, int groups, std::span<const SplitPart> parts,
                  std::span<float* const> outs, std::span<const int> out_widths, cudaStream_t s) {
  SplitPlan plan{};
  plan.parts = int(parts.size());
  int filled[kMaxSplitParts] = {};
  for (size_t i = 0; i < parts.size(); ++i) {
    const int o = parts[i].out;
    plan.width[i] = parts[i].width;
    plan.in_at[i] = plan.group_width;
    plan.group_width += parts[i].width;
    plan.out[i] = o;
    plan.out_at[i] = filled[o];
    filled[o] += parts[i].width * groups;
  }
  for (size_t o = 0; o < outs.size(); ++o) {
    plan.outs[o] = outs[o];
    plan.out_width[o] = out_widths[o];
  }
  const int64_t n = int64_t(T) * groups * plan.group_width;
  if (n == 0) return;
  split_groups_kernel<<<blocks_for(n, 256), 256, 0, s>>>(in, T, in_width, groups, plan);
}

void sigmoid_mul(float* buf, const float* gate, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  sigmoid_mul_kernel<<<blocks_for(n, 256), 256, 0, s>>>(buf, gate, n);
}

void causal_conv(const float* in, int T, int in_width, const float* weight, int channels, int kernel, float* history,
                 float* out, cudaStream_t s) {
  if (T == 0 || channels == 0) return;
  causal_conv_kernel<<<blocks_for(channels, 128), 128, 0, s>>>(in, T, in_width, weight, channels, kernel, history,
                                                                out);
}

void gated_delta_rule(const float* qkv, const float* b, const float* a, int T, const float* a_log,
                      const float* dt_bias, const DeltaRuleParams& p, float* S, float* out, cudaStream_t s) {
  if (T == 0) return;
  const size_t shared = size_t(2 * p.key_dim) * sizeof(float);
  const dim3 grid(unsigned(p.value_heads), blocks_for(p.value_dim, kRuleThreads));
  if (p.key_dim <= kRuleRegisters)
    gated_delta_rule_kernel<kRuleRegisters><<<grid, kRuleThreads, shared, s>>>(qkv, b, a, T, a_log, dt_bias, p, S, out);
  else
    gated_delta_rule_kernel<0><<<grid, kRuleThreads, shared, s>>>(qkv, b, a, T, a_log, dt_bias, p, S, out);
}

void gated_rms_norm(const float* x, const float* gate, int T, int width, int group, const float* weight, int64_t wn,
                    float eps, float* y, cudaStream_t s) {
  const int groups = T * (width / group);
  if (groups == 0) return;
  gated_rms_norm_kernel<<<blocks_for(groups, 4), 128, 0, s>>>(x, gate, groups, group, width, weight, wn, eps, y);
}

}  // namespace moeflux::cuda
