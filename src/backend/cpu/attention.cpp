#include "backend/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/simd_kernels.h"

namespace moeflux::cpu {

void attention(ThreadPool& pool, const AttentionShape& s, KvCache& kv, int layer, const int32_t* positions, int T,
               const float* q, const float* k, const float* v, float* out) {
  const int kvd = s.kv_heads * s.head_dim, qd = s.heads * s.head_dim;
  const int group = s.heads / s.kv_heads;
  for (int t = 0; t < T; ++t) {
    std::memcpy(kv.key(layer, positions[t]), k + size_t(t) * kvd, sizeof(float) * size_t(kvd));
    std::memcpy(kv.value(layer, positions[t]), v + size_t(t) * kvd, sizeof(float) * size_t(kvd));
  }
  const float scale = 1.0f / std::sqrt(float(s.head_dim));
  pool.parallel_for(size_t(T) * size_t(s.heads), 1, [&](size_t b, size_t e) {
    std::vector<float> scores;
    for (size_t i = b; i < e; ++i) {
      const int t = int(i / size_t(s.heads)), h = int(i % size_t(s.heads));
      const int kh = h / group;
      const int last = positions[t];
      const int first = s.sliding_window ? std::max(0, last - *s.sliding_window + 1) : 0;
      const float* qh = q + size_t(t) * qd + size_t(h) * s.head_dim;
      scores.resize(size_t(last - first + 1));
      for (int p = first; p <= last; ++p)
        scores[size_t(p - first)] = simd::dot(qh, kv.key(layer, p) + size_t(kh) * s.head_dim, size_t(s.head_dim)) * scale;
      const float m = *std::max_element(scores.begin(), scores.end());
      float sum = 0;
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
