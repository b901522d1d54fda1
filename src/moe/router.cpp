#include "moe/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace moeflux {

void validate_router(const RouterSpec& s, int experts, int k) {
  if (experts < 1) fail("router: {} experts (at least 1 expected)", experts);
  if (k < 1 || k > experts) fail("router: top-k {} is not in [1, {}] (the number of experts)", k, experts);
  if (s.groups < 1 || experts % s.groups != 0)
    fail("router: {} expert groups do not divide the {} experts", s.groups, experts);
  if (s.topk_groups < 1 || s.topk_groups > s.groups)
    fail("router: {} groups kept is not in [1, {}] (the number of groups)", s.topk_groups, s.groups);
  if (s.groups > 1 && s.scoring != RouterScoring::Sigmoid)
    fail("router: group-limited routing is implemented for sigmoid scoring only");
  if (k > experts / s.groups * s.topk_groups)
    fail("router: top-k {} exceeds the {} experts of the {} groups kept", k, experts / s.groups * s.topk_groups,
         s.topk_groups);
  if (!std::isfinite(s.scaling) || s.scaling <= 0) fail("router: scaling factor {} must be finite and positive", s.scaling);
}

namespace {

// The same arithmetic as the engine has always used for softmax routers
// (max-shifted exp in float, sum in double), so routing stays bit-identical.
void softmax(float* x, size_t n) {
  float m = -INFINITY;
  for (size_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - m));
  const float inv = float(1.0 / sum);
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

// The k best of `score` into idx[0, k), best first, ties to the lower id.
void top_k(const std::vector<float>& score, int k, std::vector<int32_t>& idx) {
  idx.resize(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return score[size_t(a)] != score[size_t(b)] ? score[size_t(a)] > score[size_t(b)] : a < b;
  });
}

// DeepSeek-V3's group limit: groups scored by the sum of their two best
// choice scores; experts outside the best `keep` groups get choice 0, as
// transformers' masked_fill(…, 0.0) does.
void limit_groups(std::vector<float>& choice, int groups, int keep, RouterScratch& sc) {
  const size_t E = choice.size(), per = E / size_t(groups);
  sc.group_score.resize(size_t(groups));
  for (size_t g = 0; g < size_t(groups); ++g) {
    const float* c = &choice[g * per];
    float best = -INFINITY, second = -INFINITY;
    for (size_t i = 0; i < per; ++i) {
      if (c[i] > best) {
        second = best;
        best = c[i];
      } else if (c[i] > second) {
        second = c[i];
      }
    }
    sc.group_score[g] = per >= 2 ? best + second : best;
  }
  std::vector<int32_t> order;
  top_k(sc.group_score, keep, order);
  std::vector<uint8_t> kept(size_t(groups), 0);
  for (int i = 0; i < keep; ++i) kept[size_t(order[size_t(i)])] = 1;
  for (size_t e = 0; e < E; ++e)
    if (!kept[e / per]) choice[e] = 0.0f;
}

}  // namespace

void route(const RouterSpec& s, const float* logits, int T, int E, int k, std::span<const float> bias, Routing& r,
           RouterScratch& sc) {
  if (!bias.empty() && bias.size() != size_t(E)) fail("router: correction bias has {} entries for {} experts", bias.size(), E);
  r.k = k;
  r.experts.resize(size_t(T) * size_t(k));
  r.weights.resize(size_t(T) * size_t(k));
  sc.scores.resize(size_t(E));
  for (int t = 0; t < T; ++t) {
    const float* row = logits + size_t(t) * size_t(E);
    int32_t* ids = &r.experts[size_t(t) * k];
    float* w = &r.weights[size_t(t) * k];
    std::copy(row, row + E, sc.scores.begin());
    switch (s.scoring) {
      case RouterScoring::Softmax: {
        softmax(sc.scores.data(), size_t(E));
        top_k(sc.scores, k, sc.index);
        float sum = 0;
        for (int j = 0; j < k; ++j) sum += sc.scores[size_t(sc.index[size_t(j)])];
        for (int j = 0; j < k; ++j) {
          ids[j] = sc.index[size_t(j)];
          w[j] = s.renormalize ? sc.scores[size_t(ids[j])] / sum : sc.scores[size_t(ids[j])];
        }
        break;
      }
      case RouterScoring::TopkSoftmax: {
        top_k(sc.scores, k, sc.index);
        for (int j = 0; j < k; ++j) {
          ids[j] = sc.index[size_t(j)];
          w[j] = sc.scores[size_t(ids[j])];
        }
        softmax(w, size_t(k));
        break;
      }
      case RouterScoring::Sigmoid: {
        sc.choice.resize(size_t(E));
        for (int e = 0; e < E; ++e) {
          sc.scores[size_t(e)] = 1.0f / (1.0f + std::exp(-sc.scores[size_t(e)]));
          sc.choice[size_t(e)] = sc.scores[size_t(e)] + (bias.empty() ? 0.0f : bias[size_t(e)]);
        }
        if (s.groups > 1) limit_groups(sc.choice, s.groups, s.topk_groups, sc);
        top_k(sc.choice, k, sc.index);
        float sum = 0;
        for (int j = 0; j < k; ++j) {
          ids[j] = sc.index[size_t(j)];
          w[j] = sc.scores[size_t(ids[j])];
          sum += w[j];
        }
        if (s.renormalize)
          for (int j = 0; j < k; ++j) w[j] /= sum + 1e-20f;
        break;
      }
    }
    if (s.scaling != 1.0f)
      for (int j = 0; j < k; ++j) w[j] *= s.scaling;
  }
}

}  // namespace moeflux
