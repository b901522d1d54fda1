#include "backend/cpu/kv_cache.h"

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

}  // namespace moeflux
