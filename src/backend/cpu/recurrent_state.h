// One session's fixed-size layer states on the CPU: the conv history and
// delta-rule matrices of each recurrent (linear-attention) layer, one
// block per layer, overwritten by every step. Allocated with the session
// and charged to the engine's StateBudget; a checkpoint copies them
// (snapshot/restore), since they cannot be rewound.
#pragma once
#include <memory>
#include <vector>

#include "backend/state_budget.h"
#include "graph/ir.h"

namespace moeflux {

class RecurrentStates {
 public:
  // Throws a capacity error when the blocks do not fit the budget.
  RecurrentStates(const std::vector<StateDesc>& states, StateBudget& budget);
  ~RecurrentStates();
  RecurrentStates(const RecurrentStates&) = delete;
  RecurrentStates& operator=(const RecurrentStates&) = delete;

  // The block of state `state` (a Recurrent one); throws for another kind.
  float* data(uint32_t state);
  size_t floats(uint32_t state) const { return state < size_.size() ? size_[state] : 0; }
  size_t bytes() const { return total_ * sizeof(float); }
  bool empty() const { return total_ == 0; }
  void clear();  // zeroes every block (a new conversation)
  // Every block, in state order, copied out and back (checkpoints).
  std::vector<float> snapshot() const;
  void restore(const std::vector<float>& all);

 private:
  std::vector<size_t> offset_, size_;  // per state; size 0 for positional ones
  size_t total_ = 0;
  std::unique_ptr<float[]> buf_;
  StateBudget& budget_;
};

}  // namespace moeflux
