// The sampling chain; see sampler.h for the order of the steps and why.
//
// Speed matters because this runs once per generated token over the whole
// vocabulary (~150k for current MoE models). The costs per call are: one copy
// of the logits (so the input stays untouched), a heap scan for top-k, one
// exp() per surviving candidate, and a sort only over the few tokens that
// top-p actually needs. All scratch is sized in the constructor.
#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace moeflux {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The order candidates are ranked in: higher logit first, ties to the lower
// id, so that every cut (top-k, top-p) is deterministic.
inline bool better(const Sampler::Candidate& a, const Sampler::Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

}  // namespace

void SamplingParams::validate(int32_t vocab_size) const {
  if (vocab_size < 1) fail("sampling: vocab_size is {}, must be >= 1", vocab_size);
  if (!(std::isfinite(temperature) && temperature >= 0))
    fail("sampling: temperature is {}, must be finite and >= 0 (0 = greedy)", temperature);
  if (top_k < 0) fail("sampling: top_k is {}, must be >= 0 (0 = off)", top_k);
  if (!(top_p > 0 && top_p <= 1)) fail("sampling: top_p is {}, must be in (0, 1] (1 = off)", top_p);
  if (!(min_p >= 0 && min_p <= 1)) fail("sampling: min_p is {}, must be in [0, 1] (0 = off)", min_p);
  if (!(std::isfinite(repetition_penalty) && repetition_penalty > 0))
    fail("sampling: repetition_penalty is {}, must be finite and > 0 (1 = off)", repetition_penalty);
  if (!std::isfinite(presence_penalty))
    fail("sampling: presence_penalty is {}, must be finite", presence_penalty);
  if (!std::isfinite(frequency_penalty))
    fail("sampling: frequency_penalty is {}, must be finite", frequency_penalty);
  if (penalty_last_n < -1)
    fail("sampling: penalty_last_n is {}, must be >= -1 (-1 = whole history, 0 = off)", penalty_last_n);
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0 || id >= vocab_size)
      fail("sampling: logit_bias token id {} is out of range [0, {})", id, vocab_size);
    // -inf bans a token; +inf or NaN would make the softmax undefined.
    if (std::isnan(bias) || bias == kInf)
      fail("sampling: logit_bias for token {} is {}, must be finite or -inf", id, bias);
  }
}

Sampler::Sampler(SamplingParams p, int32_t vocab_size) : params_(std::move(p)), vocab_(vocab_size) {
  params_.validate(vocab_size);
  rng_.reseed(params_.seed);
  work_.resize(size_t(vocab_));
  counts_.assign(size_t(vocab_), 0);
  cands_.reserve(size_t(vocab_));
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= vocab_)
    fail("Sampler::accept: token {} is out of range [0, {})", token, vocab_);
  history_.push_back(token);
}

void Sampler::reset() {
  history_.clear();
  cands_.clear();
  rng_.reseed(params_.seed);
}

void Sampler::apply_penalties() {
  const SamplingParams& p = params_;
  const bool any = p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (!any || p.penalty_last_n == 0 || history_.empty()) return;
  size_t n = history_.size();
  if (p.penalty_last_n > 0) n = std::min(n, size_t(p.penalty_last_n));
  const std::span<const int32_t> window = std::span<const int32_t>(history_).last(n);
  // Two passes over the window instead of a map: the first counts, the second
  // applies each distinct token once and zeroes its count, which leaves
  // counts_ all zero for the next call without touching the whole vocabulary.
  for (int32_t t : window) ++counts_[size_t(t)];
  for (int32_t t : window) {
    const int32_t c = counts_[size_t(t)];
    if (c == 0) continue;  // already applied
    counts_[size_t(t)] = 0;
    float& l = work_[size_t(t)];
    l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    l -= float(c) * p.frequency_penalty + p.presence_penalty;
  }
}

int32_t Sampler::greedy() const {
  // Strict > keeps the first (lowest) id among equal maxima.
  int32_t best = 0;
  float best_l = work_[0];
  for (int32_t i = 1; i < vocab_; ++i) {
    if (work_[size_t(i)] > best_l) {
      best_l = work_[size_t(i)];
      best = i;
    }
  }
  if (best_l == -kInf) fail("Sampler::sample: every token is banned (all logits are -inf)");
  return best;
}

// Keeps the k best finite logits in cands_ using a heap of size k whose front
// is the worst kept candidate: most tokens are rejected by one comparison, so
// this costs about one pass over the vocabulary for the usual small k.
void Sampler::select_top_k(int k) {
  cands_.clear();
  const size_t kk = size_t(k);
  for (int32_t i = 0; i < vocab_; ++i) {
    const float v = work_[size_t(i)];
    if (v == -kInf) continue;
    if (cands_.size() < kk) {
      cands_.push_back({i, v, 0.0f});
      std::push_heap(cands_.begin(), cands_.end(), better);
    } else if (v > cands_.front().logit) {
      // Ties with the front lose: ids only grow, so the kept one has the lower id.
      std::pop_heap(cands_.begin(), cands_.end(), better);
      cands_.back() = {i, v, 0.0f};
      std::push_heap(cands_.begin(), cands_.end(), better);
    }
  }
}

void Sampler::select_finite() {
  cands_.clear();
  for (int32_t i = 0; i < vocab_; ++i) {
    const float v = work_[size_t(i)];
    if (v != -kInf) cands_.push_back({i, v, 0.0f});
  }
}

// Top-p over cands_ (unnormalised p). Keeps the smallest best-first prefix
// whose mass reaches `target` (= top_p times the mass before min-p). Instead
// of sorting everything, sort a growing prefix: real distributions put the
// nucleus in the first few dozen tokens, so one partial sort usually suffices.
void Sampler::top_p_cut(double target) {
  const size_t n = cands_.size();
  size_t sorted = 0;
  double cum = 0;
  size_t m = std::min<size_t>(n, 64);
  while (true) {
    std::partial_sort(cands_.begin() + ptrdiff_t(sorted), cands_.begin() + ptrdiff_t(m), cands_.end(), better);
    for (; sorted < m; ++sorted) {
      cum += cands_[sorted].p;
      if (cum >= target) {
        cands_.resize(sorted + 1);
        return;
      }
    }
    if (m == n) return;  // the mass never reaches top_p (min-p removed it): keep all
    m = std::min(n, m * 4);
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.size() != size_t(vocab_))
    fail("Sampler::sample: got {} logits, expected vocab_size {}", logits.size(), vocab_);

  // Copy and check in one pass; !(v < inf) catches NaN and +inf together.
  bool bad = false;
  {
    const float* src = logits.data();
    float* dst = work_.data();
    for (size_t i = 0; i < size_t(vocab_); ++i) {
      dst[i] = src[i];
      bad |= !(src[i] < kInf);
    }
  }
  if (bad) {
    for (size_t i = 0; i < size_t(vocab_); ++i)
      if (!(logits[i] < kInf)) fail("Sampler::sample: logit of token {} is {}, must be finite or -inf", i, logits[i]);
  }

  // 1. logit bias
  for (const auto& [id, bias] : params_.logit_bias) {
    float& l = work_[size_t(id)];
    l += bias;
    if (l == kInf) fail("Sampler::sample: logit of token {} overflows to +inf after logit_bias {}", id, bias);
  }
  // 2. penalties
  apply_penalties();

  // 3. greedy
  cands_.clear();
  if (params_.temperature == 0.0f) return greedy();

  // 4. top-k (k >= vocabulary means off)
  const int k = params_.top_k;
  if (k > 0 && k < vocab_) {
    select_top_k(k);
  } else {
    select_finite();
  }
  if (cands_.empty()) fail("Sampler::sample: every token is banned (all logits are -inf)");

  // 5. softmax at the temperature. Division rather than multiplying by 1/T:
  // for a tiny T, 1/T overflows and 0 * inf would turn the best token into NaN.
  float max_l = -kInf;
  for (const Candidate& c : cands_) max_l = std::max(max_l, c.logit);
  const float t = params_.temperature;
  double mass = 0;
  for (Candidate& c : cands_) {
    c.p = std::exp((c.logit - max_l) / t);
    mass += c.p;
  }

  // 7. min-p, applied before 6. top-p because it is a cheap linear filter and
  // gives the same set: both keep a best-first prefix, so the result is the
  // shorter of the two prefixes, and top-p is computed against the mass before
  // min-p. The best token has p = exp(0) = 1 exactly, so the threshold is min_p.
  if (params_.min_p > 0.0f) {
    const float thr = params_.min_p;
    std::erase_if(cands_, [thr](const Candidate& c) { return c.p < thr; });
  }
  // 6. top-p
  if (params_.top_p < 1.0f) top_p_cut(double(params_.top_p) * mass);

  // 8. draw: invert the cumulative distribution with one uniform double. The
  // running sum repeats the additions that made `total`, so it ends exactly at
  // total; candidates with p = 0 are never chosen (u < cum is strict).
  double total = 0;
  for (const Candidate& c : cands_) total += c.p;
  const double u = rng_.uniform() * total;
  double cum = 0;
  int32_t chosen = -1;
  for (const Candidate& c : cands_) {
    cum += c.p;
    if (u < cum) {
      chosen = c.id;
      break;
    }
  }
  if (chosen < 0) {
    // u * total can round up to total itself; then take the last token that
    // has any probability.
    for (auto it = cands_.rbegin(); it != cands_.rend(); ++it) {
      if (it->p > 0) {
        chosen = it->id;
        break;
      }
    }
  }
  const float inv = float(1.0 / total);
  for (Candidate& c : cands_) c.p *= inv;
  return chosen;
}

}  // namespace moeflux
