// Helpers for tests that run the engine (model and expert-store areas).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <hwy/targets.h>

#include "moeflux/engine.h"

namespace moeflux::test {

// Logits of a prompt (all positions) followed by `decode` single-token steps
// on a fixed token sequence, concatenated.
inline std::vector<float> run_tokens(const std::shared_ptr<Engine>& e, const std::vector<int32_t>& prompt,
                                     int decode) {
  Session s(e);
  auto l = s.step(prompt, true);
  std::vector<float> all(l.begin(), l.end());
  int32_t next = 1;
  for (int i = 0; i < decode; ++i) {
    next = int32_t((next * 31 + 7) % e->spec().vocab);
    l = s.step(std::span<const int32_t>(&next, 1));
    all.insert(all.end(), l.begin(), l.end());
  }
  return all;
}

// Logits of `tokens` fed one step at a time to a fresh session, concatenated
// (the decode path, against references computed over the whole sequence).
inline std::vector<float> decode_one_by_one(const std::shared_ptr<Engine>& e, const std::vector<int32_t>& tokens) {
  Session s(e);
  std::vector<float> all;
  for (const int32_t& t : tokens) {
    auto logits = s.step(std::span<const int32_t>(&t, 1));
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

struct LogitsComparison {
  double max_abs = 0, scale = 0;
  int top1_mismatches = 0;
};

// Logit scale = largest |reference logit|; tolerances are relative to it.
inline LogitsComparison compare_logits(std::span<const float> ours, const std::vector<float>& ref, int rows,
                                       int vocab) {
  LogitsComparison c;
  for (float r : ref) c.scale = std::max(c.scale, double(std::fabs(r)));
  for (int t = 0; t < rows; ++t) {
    const float* a = ours.data() + size_t(t) * size_t(vocab);
    const float* b = ref.data() + size_t(t) * size_t(vocab);
    for (int i = 0; i < vocab; ++i) c.max_abs = std::max(c.max_abs, double(std::fabs(a[i] - b[i])));
    if (std::max_element(a, a + vocab) - a != std::max_element(b, b + vocab) - b) c.top1_mismatches++;
  }
  return c;
}

// KL(p || q) in nats, averaged over positions (rows of `vocab` logits).
inline double mean_kl(std::span<const float> p_logits, std::span<const float> q_logits, size_t vocab) {
  double total = 0;
  const size_t rows = p_logits.size() / vocab;
  for (size_t t = 0; t < rows; ++t) {
    auto lse = [&](std::span<const float> v) {
      const float m = *std::max_element(v.begin() + long(t * vocab), v.begin() + long((t + 1) * vocab));
      double s = 0;
      for (size_t i = 0; i < vocab; ++i) s += std::exp(double(v[t * vocab + i]) - m);
      return m + std::log(s);
    };
    const double lp = lse(p_logits), lq = lse(q_logits);
    for (size_t i = 0; i < vocab; ++i) {
      const double a = p_logits[t * vocab + i] - lp, b = q_logits[t * vocab + i] - lq;
      total += std::exp(a) * (a - b);
    }
  }
  return total / double(rows);
}

// Runs fn with the CPU kernels limited to the best compiled instruction set
// below AVX2, where no kernel rounds activations to int8: the engine then
// computes quantized models exactly as their dequantized weights in f32.
// Returns false (fn not run) where no such target was compiled.
template <class Fn>
bool with_f32_activations(Fn fn) {
  int64_t best = 0;
  for (int64_t t : hwy::SupportedAndGeneratedTargets())
    if (t > HWY_AVX2 && (best == 0 || t < best)) best = t;  // Highway: lower bit = better target
  if (best == 0) return false;
  hwy::SetSupportedTargetsForTest(best);
  try {
    fn();
  } catch (...) {
    hwy::SetSupportedTargetsForTest(0);
    throw;
  }
  hwy::SetSupportedTargetsForTest(0);
  return true;
}

}  // namespace moeflux::test
