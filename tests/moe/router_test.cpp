// Every router rule against a plain reference written from the model
// code's formulas (transformers' Mixtral/Qwen, gpt-oss and DeepSeek-V3
// routers), on random logits and odd expert counts.
#include "moe/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "moeflux/error.h"

namespace moeflux {
namespace {

struct Ref {
  std::vector<int32_t> ids;  // chosen experts (as a set: the model code's topk is unsorted)
  std::vector<double> weight_of;  // weight by expert id (0 when not chosen)
};

std::vector<int32_t> argsort_desc(const std::vector<double>& v) {
  std::vector<int32_t> i(v.size());
  std::iota(i.begin(), i.end(), 0);
  std::stable_sort(i.begin(), i.end(), [&](int32_t a, int32_t b) { return v[size_t(a)] > v[size_t(b)]; });
  return i;
}

Ref reference(const RouterSpec& s, const float* logits, int E, int k, const std::vector<float>& bias) {
  Ref r;
  r.weight_of.assign(size_t(E), 0.0);
  std::vector<double> x(logits, logits + E);
  if (s.scoring == RouterScoring::Softmax) {
    const double m = *std::max_element(x.begin(), x.end());
    double z = 0;
    for (double& v : x) z += (v = std::exp(v - m));
    for (double& v : x) v /= z;
    const auto order = argsort_desc(x);
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += x[size_t(order[size_t(j)])];
    for (int j = 0; j < k; ++j) {
      const int32_t e = order[size_t(j)];
      r.ids.push_back(e);
      r.weight_of[size_t(e)] = (s.renormalize ? x[size_t(e)] / sum : x[size_t(e)]) * s.scaling;
    }
  } else if (s.scoring == RouterScoring::TopkSoftmax) {
    const auto order = argsort_desc(x);
    double m = x[size_t(order[0])], z = 0;
    for (int j = 0; j < k; ++j) z += std::exp(x[size_t(order[size_t(j)])] - m);
    for (int j = 0; j < k; ++j) {
      const int32_t e = order[size_t(j)];
      r.ids.push_back(e);
      r.weight_of[size_t(e)] = std::exp(x[size_t(e)] - m) / z * s.scaling;
    }
  } else {
    std::vector<double> sc(static_cast<size_t>(E)), choice(static_cast<size_t>(E));
    for (int e = 0; e < E; ++e) {
      sc[size_t(e)] = 1.0 / (1.0 + std::exp(-x[size_t(e)]));
      choice[size_t(e)] = sc[size_t(e)] + (bias.empty() ? 0.0 : bias[size_t(e)]);
    }
    const int per = E / s.groups;
    std::vector<double> gscore(static_cast<size_t>(s.groups));
    for (int g = 0; g < s.groups; ++g) {
      std::vector<double> in(choice.begin() + g * per, choice.begin() + (g + 1) * per);
      std::sort(in.rbegin(), in.rend());
      gscore[size_t(g)] = in[0] + (per >= 2 ? in[1] : 0.0);
    }
    const auto gorder = argsort_desc(gscore);
    std::set<int> kept(gorder.begin(), gorder.begin() + s.topk_groups);
    if (s.groups > 1)
      for (int e = 0; e < E; ++e)
        if (!kept.count(e / per)) choice[size_t(e)] = 0.0;  // transformers: masked_fill(..., 0.0)
    const auto order = argsort_desc(choice);
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += sc[size_t(order[size_t(j)])];
    for (int j = 0; j < k; ++j) {
      const int32_t e = order[size_t(j)];
      r.ids.push_back(e);
      r.weight_of[size_t(e)] = (s.renormalize ? sc[size_t(e)] / (sum + 1e-20) : sc[size_t(e)]) * s.scaling;
    }
  }
  return r;
}

void check(const RouterSpec& spec, int E, int k, bool with_bias, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 2.f);
  const int T = 5;
  std::vector<float> logits(size_t(T) * E), bias;
  for (float& v : logits) v = nd(rng);
  if (with_bias)
    for (int e = 0; e < E; ++e) bias.push_back(0.3f * nd(rng));
  validate_router(spec, E, k);
  Routing got;
  RouterScratch sc;
  route(spec, logits.data(), T, E, k, bias, got, sc);
  ASSERT_EQ(got.k, k);
  for (int t = 0; t < T; ++t) {
    const Ref want = reference(spec, &logits[size_t(t) * E], E, k, bias);
    std::vector<int32_t> ids(got.experts.begin() + t * k, got.experts.begin() + (t + 1) * k);
    EXPECT_EQ(std::set<int32_t>(ids.begin(), ids.end()), std::set<int32_t>(want.ids.begin(), want.ids.end()))
        << "token " << t << ", E " << E << ", k " << k;
    EXPECT_EQ(ids, want.ids) << "best first";
    for (int j = 0; j < k; ++j)
      EXPECT_NEAR(got.weights[size_t(t * k + j)], want.weight_of[size_t(ids[size_t(j)])],
                  1e-6 * std::max(1.0, spec.scaling * 1.0));
  }
}

TEST(Router, SoftmaxWithAndWithoutRenormalisation) {
  for (int E : {1, 7, 60})
    for (int k : {1, 3, 8}) {
      if (k > E) continue;
      RouterSpec s;
      check(s, E, k, false, uint32_t(E * 10 + k));
      s.renormalize = true;
      check(s, E, k, false, uint32_t(E * 10 + k + 1));
    }
}

TEST(Router, TopkSoftmaxAsGptOss) {
  RouterSpec s;
  s.scoring = RouterScoring::TopkSoftmax;
  for (int E : {5, 32, 129}) check(s, E, 4, false, uint32_t(E));
}

TEST(Router, SigmoidWithCorrectionBiasGroupsAndScalingAsDeepSeekV3) {
  RouterSpec s;
  s.scoring = RouterScoring::Sigmoid;
  s.renormalize = true;
  s.scaling = 2.5f;
  check(s, 9, 3, true, 1);  // no groups
  s.groups = 4;
  s.topk_groups = 2;
  check(s, 12, 5, true, 2);  // groups of 3, keep 2
  s.groups = 8;
  s.topk_groups = 4;
  check(s, 64, 8, true, 3);  // DeepSeek-V3's 256/8/4 at a smaller size
  s.renormalize = false;
  s.scaling = 1.0f;
  check(s, 64, 6, false, 4);
  s.groups = 5;
  s.topk_groups = 5;  // every group kept: the same as none
  check(s, 5, 2, true, 5);  // groups of one expert
}

TEST(Router, TiesGoToTheLowerId) {
  const float logits[6] = {1.f, 2.f, 2.f, 0.f, 2.f, -1.f};
  Routing r;
  RouterScratch sc;
  route(RouterSpec{}, logits, 1, 6, 2, {}, r, sc);
  EXPECT_EQ(r.experts, (std::vector<int32_t>{1, 2}));
}

TEST(Router, BadSpecsAreRefusedByName) {
  RouterSpec s;
  EXPECT_THROW(validate_router(s, 8, 9), Error);
  s.scoring = RouterScoring::Sigmoid;
  s.groups = 3;
  EXPECT_THROW(validate_router(s, 8, 2), Error);  // 3 does not divide 8
  s.groups = 4;
  s.topk_groups = 5;
  EXPECT_THROW(validate_router(s, 8, 2), Error);
  s.topk_groups = 1;
  EXPECT_THROW(validate_router(s, 8, 3), Error);  // one group of 2 experts cannot give 3
  s.scoring = RouterScoring::Softmax;
  EXPECT_THROW(validate_router(s, 8, 2), Error);  // groups need sigmoid scoring
  RouterSpec n;
  n.scaling = 0.f;
  EXPECT_THROW(validate_router(n, 8, 2), Error);
}

}  // namespace
}  // namespace moeflux
