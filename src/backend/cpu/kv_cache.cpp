#include "backend/cpu/kv_cache.h"

#include <cstring>

#include "core/error.h"
#include "core/progress.h"

namespace moeflux {

KvCache::KvCache(const std::vector<StateDesc>& states, int max_positions, StateBudget& budget, int block_tokens)
    : max_positions_(max_positions), block_tokens_(block_tokens), budget_(budget) {
  for (const StateDesc& s : states) {
    // Fixed-size (recurrent) states live beside the cache (RecurrentStates):
    // no room per position here.
    kw_.push_back(s.positional() ? size_t(s.key_width) : 0);
    vw_.push_back(s.positional() ? size_t(s.value_width) : 0);
    key_off_.push_back(page_floats_);
    page_floats_ += size_t(block_tokens) * size_t(s.key_width);
    value_off_.push_back(page_floats_);
    page_floats_ += size_t(block_tokens) * size_t(s.value_width);
  }
}

KvCache::~KvCache() { clear(); }

void KvCache::reserve(int n) {
  if (n > max_positions_)
    fail_as(ErrorKind::Capacity, "context of {} tokens exceeds the session's limit of {} positions", n,
            max_positions_);
  while (int(pages_.size()) * block_tokens_ < n) {
    if (!budget_.try_take(page_bytes()))
      fail_as(ErrorKind::Capacity,
              "the session state budget of {} is used up ({} in use by all sessions); {} more are needed for "
              "positions up to {}: raise the budget or end other sessions",
              human_bytes(budget_.limit()), human_bytes(budget_.used()), human_bytes(page_bytes()), n);
    try {
      pages_.push_back(std::make_unique<float[]>(page_floats_));
    } catch (...) {
      budget_.give_back(page_bytes());
      throw;
    }
  }
}

void KvCache::clear() {
  budget_.give_back(pages_.size() * page_bytes());
  pages_.clear();
}

void KvCache::copy_out(int positions, std::vector<uint8_t>& out) const {
  if (positions < 0 || positions > int(pages_.size()) * block_tokens_)
    fail_as(ErrorKind::Internal, "KvCache::copy_out: {} positions, {} held", positions, int(pages_.size()) * block_tokens_);
  for (size_t s = 0; s < kw_.size(); ++s)
    for (int p = 0; p < positions; ++p) {
      const float* page = pages_[size_t(p / block_tokens_)].get();
      const size_t row = size_t(p % block_tokens_);
      const auto* k = reinterpret_cast<const uint8_t*>(page + key_off_[s] + row * kw_[s]);
      const auto* v = reinterpret_cast<const uint8_t*>(page + value_off_[s] + row * vw_[s]);
      out.insert(out.end(), k, k + kw_[s] * sizeof(float));
      out.insert(out.end(), v, v + vw_[s] * sizeof(float));
    }
}

void KvCache::copy_in(int positions, std::span<const uint8_t> in) {
  size_t need = 0;
  for (size_t s = 0; s < kw_.size(); ++s) need += size_t(positions) * (kw_[s] + vw_[s]) * sizeof(float);
  if (positions < 0 || in.size() != need)
    fail("session state of {} bytes for {} positions; this model's layers need {}", in.size(), positions, need);
  reserve(positions);  // before anything is overwritten: a budget refusal leaves the cache as it was
  const uint8_t* src = in.data();
  for (size_t s = 0; s < kw_.size(); ++s)
    for (int p = 0; p < positions; ++p) {
      std::memcpy(key(uint32_t(s), p), src, kw_[s] * sizeof(float));
      src += kw_[s] * sizeof(float);
      std::memcpy(value(uint32_t(s), p), src, vw_[s] * sizeof(float));
      src += vw_[s] * sizeof(float);
    }
}

}  // namespace moeflux
