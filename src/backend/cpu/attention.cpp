#include "backend/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/simd_kernels.h"
#include "format/weight_view.h"

namespace moeflux::cpu {

void kv_append(KvCache& kv, uint32_t state, const int32_t* positions, int T, const float* k, const float* v) {
  const size_t kw = size_t(kv.key_width(state)), vw = size_t(kv.value_width(state));
  for (int t = 0; t < T; ++t) {
    std::memcpy(kv.key(state, positions[t]), k + size_t(t) * kw, sizeof(float) * kw);
    std::memcpy(kv.value(state, positions[t]), v + size_t(t) * vw, sizeof(float) * vw);
  }
}

void attention(ThreadPool& pool, const AttentionParams& s, KvCache& kv, uint32_t layer, const int32_t* positions,
               int T, const float* q, float* out) {
  const int qd = s.heads * s.head_dim;
  const int group = s.heads / s.kv_heads;
  const float scale = s.scale;
  // Attention sinks (gpt-oss): a per-head logit in each softmax's
  // denominator, as transformers' eager_attention_forward concatenates it.
  std::vector<float> sinks;
  if (s.sinks) {
    const WeightView w = WeightView::of(*s.sinks);
    sinks.resize(size_t(s.heads));
    for (int h = 0; h < s.heads; ++h) sinks[size_t(h)] = load_weight_elem(w, h);
  }
  pool.parallel_for(size_t(T) * size_t(s.heads), 1, [&](size_t b, size_t e) {
    std::vector<float> scores;
    for (size_t i = b; i < e; ++i) {
      const int t = int(i / size_t(s.heads)), h = int(i % size_t(s.heads));
      const int kh = h / group;
      const int last = positions[t];
      const int first = s.window ? std::max(0, last - *s.window + 1) : 0;
      const float* qh = q + size_t(t) * qd + size_t(h) * s.head_dim;
      scores.resize(size_t(last - first + 1));
      for (int p = first; p <= last; ++p)
        scores[size_t(p - first)] = simd::dot(qh, kv.key(layer, p) + size_t(kh) * s.head_dim, size_t(s.head_dim)) * scale;
      float m = *std::max_element(scores.begin(), scores.end());
      if (!sinks.empty()) m = std::max(m, sinks[size_t(h)]);
      float sum = sinks.empty() ? 0.0f : std::exp(sinks[size_t(h)] - m);
      for (float& x : scores) sum += (x = std::exp(x - m));
      const float inv = 1.0f / sum;
      float* oh = out + size_t(t) * qd + size_t(h) * s.head_dim;
      std::fill(oh, oh + s.head_dim, 0.0f);
      for (int p = first; p <= last; ++p)
        simd::axpy(scores[size_t(p - first)] * inv, kv.value(layer, p) + size_t(kh) * s.head_dim, oh, size_t(s.head_dim));
    }
  });
}

}  // namespace moeflux::cpu
