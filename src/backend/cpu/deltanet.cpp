#include "backend/cpu/deltanet.h"

#include <cmath>
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

void gated_delta_rule(ThreadPool& pool, const float* qkv, const float* b, const float* a, int T,
                      const WeightView& a_log, const WeightView& dt_bias, const DeltaRuleParams& p, float* S,
                      float* out) {
  const int Hk = p.key_heads, Hv = p.value_heads, dk = p.key_dim, dv = p.value_dim;
  const int per_key = Hv / Hk;
  const size_t width = size_t(2 * Hk * dk + Hv * dv), out_width = size_t(Hv) * size_t(dv);
  const std::vector<float> alog = load_vector(a_log, size_t(Hv)), dtb = load_vector(dt_bias, size_t(Hv));
  pool.parallel_for(size_t(Hv), 1, [&](size_t h0, size_t h1) {
    std::vector<float> q(static_cast<size_t>(dk)), k(static_cast<size_t>(dk)), kv(static_cast<size_t>(dv)),
        delta(static_cast<size_t>(dv));
    for (size_t h = h0; h < h1; ++h) {
      const int kh = int(h) / per_key;
      float* s = S + h * size_t(dk) * size_t(dv);  // [dk][dv]
      const float neg_a = -std::exp(alog[h]);
      for (int t = 0; t < T; ++t) {
        const float* row = qkv + size_t(t) * width;
        std::memcpy(q.data(), row + size_t(kh) * size_t(dk), sizeof(float) * size_t(dk));
        std::memcpy(k.data(), row + size_t(Hk + kh) * size_t(dk), sizeof(float) * size_t(dk));
        const float* v = row + size_t(2 * Hk * dk) + h * size_t(dv);
        l2_normalise(q.data(), dk, p.l2_eps);
        l2_normalise(k.data(), dk, p.l2_eps);
        for (float& x : q) x *= p.scale;
        const float decay = std::exp(neg_a * softplus(a[size_t(t) * size_t(Hv) + h] + dtb[h]));
        const float beta = sigmoid(b[size_t(t) * size_t(Hv) + h]);
        // S = decay S; kv = S^T k
        std::fill(kv.begin(), kv.end(), 0.f);
        for (int i = 0; i < dk; ++i) {
          float* si = s + size_t(i) * size_t(dv);
          const float ki = k[size_t(i)];
          for (int j = 0; j < dv; ++j) {
            si[j] *= decay;
            kv[size_t(j)] += si[j] * ki;
          }
        }
        for (int j = 0; j < dv; ++j) delta[size_t(j)] = (v[j] - kv[size_t(j)]) * beta;
        // S += k delta^T; out = S^T q
        float* o = out + size_t(t) * out_width + h * size_t(dv);
        for (int j = 0; j < dv; ++j) o[j] = 0.f;
        for (int i = 0; i < dk; ++i) {
          float* si = s + size_t(i) * size_t(dv);
          const float ki = k[size_t(i)], qi = q[size_t(i)];
          for (int j = 0; j < dv; ++j) {
            si[j] += ki * delta[size_t(j)];
            o[j] += si[j] * qi;
          }
        }
      }
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
