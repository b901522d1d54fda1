// One session's positional layer states on the CPU: the keys and values of
// every attention layer (a recurrent layer's fixed state has no room here:
// RecurrentStates), each layer with its own widths, in pages of
// `block_tokens` positions so that memory grows with the conversation.
// Pages are charged to the engine's StateBudget and returned to it when
// the session forgets them.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/state_budget.h"
#include "graph/ir.h"

namespace moeflux {

class KvCache {
 public:
  KvCache(const std::vector<StateDesc>& states, int max_positions, StateBudget& budget, int block_tokens = 64);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // Makes positions [0, n) writable; throws a capacity error if n exceeds
  // max_positions or the pages do not fit the engine's state budget.
  void reserve(int n);
  float* key(uint32_t state, int pos) { return page(pos) + key_off_[state] + size_t(pos % block_tokens_) * kw_[state]; }
  float* value(uint32_t state, int pos) {
    return page(pos) + value_off_[state] + size_t(pos % block_tokens_) * vw_[state];
  }
  int key_width(uint32_t state) const { return int(kw_[state]); }
  int value_width(uint32_t state) const { return int(vw_[state]); }
  size_t states() const { return kw_.size(); }

  int max_positions() const { return max_positions_; }
  size_t bytes() const { return pages_.size() * page_bytes(); }
  void clear();  // forgets every position; the pages go back to the budget
  // Saved sessions: positions [0, positions) of every state, keys then
  // values per position, appended to `out`; copy_in writes them over the
  // cache's first positions (throws a capacity error, changing nothing,
  // when they do not fit the budget).
  void copy_out(int positions, std::vector<uint8_t>& out) const;
  void copy_in(int positions, std::span<const uint8_t> in);

 private:
  size_t page_bytes() const { return page_floats_ * sizeof(float); }
  float* page(int pos) { return pages_[size_t(pos / block_tokens_)].get(); }
  std::vector<size_t> kw_, vw_, key_off_, value_off_;
  size_t page_floats_ = 0;
  int max_positions_, block_tokens_;
  StateBudget& budget_;
  std::vector<std::unique_ptr<float[]>> pages_;
};

}  // namespace moeflux
