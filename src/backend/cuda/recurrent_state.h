// One session's fixed-size layer states on the device: the conv history
// and delta-rule matrices of each recurrent (Gated DeltaNet) layer, one
// block per layer in one allocation, overwritten by every step. Charged to
// the engine's StateBudget like the KV pages (the CPU's model is
// backend/cpu/recurrent_state.h). A checkpoint copies the blocks to another
// device allocation and back (device-to-device), since they cannot be
// rewound.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/state_budget.h"
#include "graph/ir.h"

namespace moeflux::cuda {

// A device copy of every recurrent block of one session.
class DevStateSnapshot final : public StateSnapshot {
 public:
  DevStateSnapshot(const void* owner, size_t floats);
  ~DevStateSnapshot() override;
  DevStateSnapshot(const DevStateSnapshot&) = delete;
  DevStateSnapshot& operator=(const DevStateSnapshot&) = delete;
  uint64_t bytes() const override { return floats_ * sizeof(float); }
  const void* owner() const { return owner_; }
  float* data() const { return data_; }
  size_t floats() const { return floats_; }

 private:
  const void* owner_;  // the session whose states these are
  size_t floats_ = 0;
  float* data_ = nullptr;
};

class DevRecurrentStates {
 public:
  // Zeroed blocks (the state before the first token); throws a capacity
  // error when they do not fit the budget or the device.
  DevRecurrentStates(const std::vector<StateDesc>& states, StateBudget& budget);
  ~DevRecurrentStates();
  DevRecurrentStates(const DevRecurrentStates&) = delete;
  DevRecurrentStates& operator=(const DevRecurrentStates&) = delete;

  // The block of state `state` (a Recurrent one); throws for another kind
  // or when [offset, offset + floats) is outside it (naming `op`).
  float* data(uint32_t state, size_t offset, size_t floats, const char* op) const;
  size_t bytes() const { return total_ * sizeof(float); }
  void clear();  // zeroes every block (a new conversation)
  std::shared_ptr<const StateSnapshot> snapshot(const void* owner) const;
  void restore(const StateSnapshot& s, const void* owner);
  // Saved sessions: every block, in state order, as f32 bytes appended to
  // `out` (the CPU's layout after the positional states), and back from
  // exactly bytes() bytes.
  void copy_out(std::vector<uint8_t>& out) const;
  void copy_in(std::span<const uint8_t> in);

 private:
  std::vector<size_t> offset_, size_;  // per state; size 0 for positional ones
  size_t total_ = 0;
  float* buf_ = nullptr;
  StateBudget& budget_;
};

}  // namespace moeflux::cuda
