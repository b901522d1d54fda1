#include "backend/cpu/deltanet.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

namespace moeflux::cpu {

namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
float silu(float x) { return x / (1.0f + std::exp(-x)); }
// torch.nn.functional.softplus (beta 1, threshold 20).
float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }

std::vector<float> load_vector(const WeightView& w, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = load_weight_elem(w, int64_t(i));
  return v;
}

// x *= 1 / sqrt(sum(x^2) + eps): transformers' l2norm (as FLA's kernel).
void l2_normalise(float* x, int n, float eps) {
  float ss = 0;
  for (int i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss + eps);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace

void split_groups(const float* in, int T, int in_width, int groups, std::span<const SplitPart> parts,
                  std::span<float* const> outs, std::span<const int> out_widths) {
  int group_width = 0;
  for (const SplitPart& p : parts) group_width += p.width;
  // Where each part starts in its output row: after the earlier parts of
  // that output, each as wide as all groups of it.
  std::vector<int> out_at(parts.size()), in_at(parts.size());
  std::vector<int> filled(outs.size(), 0);
  for (size_t i = 0, off = 0; i < parts.size(); ++i) {
    in_at[i] = int(off);
    off += size_t(parts[i].width);
    out_at[i] = filled[size_t(parts[i].out)];
    filled[size_t(parts[i].out)] += parts[i].width * groups;
  }
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < groups; ++g) {
      const float* src = in + size_t(t) * size_t(in_width) + size_t(g) * size_t(group_width);
      for (size_t i = 0; i < parts.size(); ++i) {
        const SplitPart& p = parts[i];
        float* dst = outs[size_t(p.out)] + size_t(t) * size_t(out_widths[size_t(p.out)]) + size_t(out_at[i]) +
                     size_t(g) * size_t(p.width);
        std::memcpy(dst, src + in_at[i], sizeof(float) * size_t(p.width));
      }
    }
}

void sigmoid_mul(float* buf, const float* gate, size_t n) {
  for (size_t i = 0; i < n; ++i) buf[i] *= sigmoid(gate[i]);
}

void causal_conv(const float* in, int T, int in_width, const WeightView& weight, int channels, int kernel,
                 float* history, float* out) {
  const size_t C = size_t(channels), K = size_t(kernel), H = K - 1;
  const std::vector<float> w = load_vector(weight, C * K);  // [channel][tap], tap K-1 the newest
  // The window over time: the history rows, then this step's rows.
  auto row = [&](int s) -> const float* {
    return s < 0 ? history + (H + size_t(s)) * C : in + size_t(s) * size_t(in_width);
  };
  for (int t = 0; t < T; ++t) {
    float* o = out + size_t(t) * C;
    for (size_t c = 0; c < C; ++c) o[c] = 0.f;
    for (size_t j = 0; j < K; ++j) {
      const float* x = row(t - int(H) + int(j));
      for (size_t c = 0; c < C; ++c) o[c] += w[c * K + j] * x[c];
    }
    for (size_t c = 0; c < C; ++c) o[c] = silu(o[c]);
  }
  // The new history: the last H rows of (history, in).
  std::vector<float> next(H * C);
  for (size_t r = 0; r < H; ++r) std::memcpy(&next[r * C], row(T - int(H) + int(r)), sizeof(float) * C);
  if (H) std::memcpy(history, next.data(), sizeof(float) * H * C);
}

namespace {

// One value head's inputs over a step, prepared as the recurrence reads
// them: q, k L2-normalised (q scaled), v, beta and the log-decay g.
struct HeadInputs {
  int T, dk, dv;
  std::vector<float> q, k, v, beta, g;  // [T][dk], [T][dk], [T][dv], [T], [T]
};

void prepare_head(const float* qkv, const float* b, const float* a, int T, size_t h, const DeltaRuleParams& p,
                  float neg_a, float dt_bias, HeadInputs& in) {
  const int Hk = p.key_heads, Hv = p.value_heads, dk = p.key_dim, dv = p.value_dim;
  const int kh = int(h) / (Hv / Hk);
  const size_t width = size_t(2 * Hk * dk + Hv * dv);
  in.T = T, in.dk = dk, in.dv = dv;
  in.q.resize(size_t(T) * size_t(dk));
  in.k.resize(size_t(T) * size_t(dk));
  in.v.resize(size_t(T) * size_t(dv));
  in.beta.resize(size_t(T));
  in.g.resize(size_t(T));
  for (int t = 0; t < T; ++t) {
    const float* row = qkv + size_t(t) * width;
    float* q = &in.q[size_t(t) * size_t(dk)];
    float* k = &in.k[size_t(t) * size_t(dk)];
    std::memcpy(q, row + size_t(kh) * size_t(dk), sizeof(float) * size_t(dk));
    std::memcpy(k, row + size_t(Hk + kh) * size_t(dk), sizeof(float) * size_t(dk));
    std::memcpy(&in.v[size_t(t) * size_t(dv)], row + size_t(2 * Hk * dk) + h * size_t(dv), sizeof(float) * size_t(dv));
    l2_normalise(q, dk, p.l2_eps);
    l2_normalise(k, dk, p.l2_eps);
    for (int i = 0; i < dk; ++i) q[i] *= p.scale;
    in.g[size_t(t)] = neg_a * softplus(a[size_t(t) * size_t(Hv) + h] + dt_bias);
    in.beta[size_t(t)] = sigmoid(b[size_t(t) * size_t(Hv) + h]);
  }
}

// The step form: S = exp(g) S; S += k (beta (v - S^T k))^T; o = S^T q.
void delta_rule_steps(const HeadInputs& in, float* s, float* out, size_t out_stride) {
  const int dk = in.dk, dv = in.dv;
  std::vector<float> kv(static_cast<size_t>(dv)), delta(static_cast<size_t>(dv));
  for (int t = 0; t < in.T; ++t) {
    const float* q = &in.q[size_t(t) * size_t(dk)];
    const float* k = &in.k[size_t(t) * size_t(dk)];
    const float* v = &in.v[size_t(t) * size_t(dv)];
    const float decay = std::exp(in.g[size_t(t)]), beta = in.beta[size_t(t)];
    std::fill(kv.begin(), kv.end(), 0.f);
    for (int i = 0; i < dk; ++i) {
      float* si = s + size_t(i) * size_t(dv);
      for (int j = 0; j < dv; ++j) {
        si[j] *= decay;
        kv[size_t(j)] += si[j] * k[i];
      }
    }
    for (int j = 0; j < dv; ++j) delta[size_t(j)] = (v[j] - kv[size_t(j)]) * beta;
    float* o = out + size_t(t) * out_stride;
    for (int j = 0; j < dv; ++j) o[j] = 0.f;
    for (int i = 0; i < dk; ++i) {
      float* si = s + size_t(i) * size_t(dv);
      for (int j = 0; j < dv; ++j) {
        si[j] += k[i] * delta[size_t(j)];
        o[j] += si[j] * q[i];
      }
    }
  }
}

float dot(const float* a, const float* b, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// The chunked form (transformers' torch_chunk_gated_delta_rule, FLA's
// chunk kernel): within a block of n tokens with cumulative log-decay G,
// the delta rule's corrections are the lower-triangular system
// (I + L) W = [beta v, beta k exp(G)], L[i][j] = beta_i (k_i . k_j)
// exp(G_i - G_j) for j < i, solved by forward substitution; the block's
// outputs then come from the state at its start plus causal attention
// inside it, and the state moves to the block's end in one update. Equal
// to the step form up to rounding; G <= 0, so no exponent overflows.
void delta_rule_chunks(const HeadInputs& in, int chunk, float* s, float* out, size_t out_stride) {
  const int dk = in.dk, dv = in.dv;
  const size_t C = size_t(chunk);
  std::vector<float> G(C), A(C * C), vn(C * size_t(dv)), kcd(C * size_t(dk)), row(C);
  for (int c0 = 0; c0 < in.T; c0 += chunk) {
    const int n = std::min(chunk, in.T - c0);
    const float* q = &in.q[size_t(c0) * size_t(dk)];
    const float* k = &in.k[size_t(c0) * size_t(dk)];
    const float* v = &in.v[size_t(c0) * size_t(dv)];
    const float* beta = &in.beta[size_t(c0)];
    float acc = 0;
    for (int i = 0; i < n; ++i) G[size_t(i)] = acc += in.g[size_t(c0 + i)];
    // A = strictly lower -(beta_i k_i . k_j exp(G_i - G_j)), then the
    // substitution that makes it (I + L)^-1 - I, then + I.
    auto a = [&](int i, int j) -> float& { return A[size_t(i) * C + size_t(j)]; };
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        a(i, j) = j < i ? -beta[i] * dot(k + size_t(i) * dk, k + size_t(j) * dk, dk) * std::exp(G[size_t(i)] - G[size_t(j)])
                        : 0.f;
    for (int i = 1; i < n; ++i) {
      std::copy_n(&A[size_t(i) * C], i, row.begin());  // row i before its update
      for (int j = 0; j < i; ++j) {
        float add = 0;
        for (int m = j + 1; m < i; ++m) add += row[size_t(m)] * a(m, j);
        a(i, j) = row[size_t(j)] + add;
      }
    }
    for (int i = 0; i < n; ++i) a(i, i) = 1.f;
    // vn = A (beta v) - (A (beta k exp(G))) S: the new values, from the
    // state at the block's start.
    for (int i = 0; i < n; ++i) {
      float* vi = &vn[size_t(i) * size_t(dv)];
      float* ki = &kcd[size_t(i) * size_t(dk)];
      std::fill(vi, vi + dv, 0.f);
      std::fill(ki, ki + dk, 0.f);
      for (int j = 0; j <= i; ++j) {
        const float w = a(i, j) * beta[j], we = w * std::exp(G[size_t(j)]);
        for (int d = 0; d < dv; ++d) vi[d] += w * v[size_t(j) * dv + size_t(d)];
        for (int d = 0; d < dk; ++d) ki[d] += we * k[size_t(j) * dk + size_t(d)];
      }
      for (int e = 0; e < dk; ++e) {
        const float* se = s + size_t(e) * size_t(dv);
        for (int d = 0; d < dv; ++d) vi[d] -= ki[e] * se[d];
      }
    }
    // out_i = exp(G_i) q_i S + sum_{j <= i} (q_i . k_j) exp(G_i - G_j) vn_j
    for (int i = 0; i < n; ++i) {
      float* o = out + size_t(c0 + i) * out_stride;
      const float* qi = q + size_t(i) * dk;
      const float eg = std::exp(G[size_t(i)]);
      for (int d = 0; d < dv; ++d) o[d] = 0.f;
      for (int e = 0; e < dk; ++e) {
        const float w = qi[e] * eg;
        const float* se = s + size_t(e) * size_t(dv);
        for (int d = 0; d < dv; ++d) o[d] += w * se[d];
      }
      for (int j = 0; j <= i; ++j) {
        const float w = dot(qi, k + size_t(j) * dk, dk) * std::exp(G[size_t(i)] - G[size_t(j)]);
        const float* vj = &vn[size_t(j) * size_t(dv)];
        for (int d = 0; d < dv; ++d) o[d] += w * vj[d];
      }
    }
    // S = exp(G_last) S + sum_i (k_i exp(G_last - G_i)) vn_i^T
    const float last = G[size_t(n - 1)], el = std::exp(last);
    for (int e = 0; e < dk; ++e) {
      float* se = s + size_t(e) * size_t(dv);
      for (int d = 0; d < dv; ++d) se[d] *= el;
      for (int i = 0; i < n; ++i) {
        const float w = k[size_t(i) * dk + size_t(e)] * std::exp(last - G[size_t(i)]);
        const float* vi = &vn[size_t(i) * size_t(dv)];
        for (int d = 0; d < dv; ++d) se[d] += w * vi[d];
      }
    }
  }
}

}  // namespace

void gated_delta_rule(ThreadPool& pool, const float* qkv, const float* b, const float* a, int T,
                      const WeightView& a_log, const WeightView& dt_bias, const DeltaRuleParams& p, float* S,
                      float* out) {
  const int Hv = p.value_heads, dk = p.key_dim, dv = p.value_dim;
  const size_t out_width = size_t(Hv) * size_t(dv);
  const std::vector<float> alog = load_vector(a_log, size_t(Hv)), dtb = load_vector(dt_bias, size_t(Hv));
  pool.parallel_for(size_t(Hv), 1, [&](size_t h0, size_t h1) {
    HeadInputs in;
    for (size_t h = h0; h < h1; ++h) {
      prepare_head(qkv, b, a, T, h, p, -std::exp(alog[h]), dtb[h], in);
      float* s = S + h * size_t(dk) * size_t(dv);  // [dk][dv]
      if (T > 1 && p.chunk > 0)
        delta_rule_chunks(in, p.chunk, s, out + h * size_t(dv), out_width);
      else
        delta_rule_steps(in, s, out + h * size_t(dv), out_width);
    }
  });
}

void gated_rms_norm(const float* x, const float* gate, int T, int width, int group, const WeightView& weight,
                    float eps, float* y) {
  const int64_t wn = weight.rows * weight.cols;
  for (int t = 0; t < T; ++t)
    for (int g0 = 0; g0 < width; g0 += group) {
      const size_t at = size_t(t) * size_t(width) + size_t(g0);
      double ss = 0;
      for (int i = 0; i < group; ++i) ss += double(x[at + size_t(i)]) * x[at + size_t(i)];
      const float inv = 1.0f / std::sqrt(float(ss / group) + eps);
      for (int i = 0; i < group; ++i)
        y[at + size_t(i)] = load_weight_elem(weight, (g0 + i) % wn) * (x[at + size_t(i)] * inv) * silu(gate[at + size_t(i)]);
    }
}

}  // namespace moeflux::cpu
