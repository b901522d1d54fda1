#include "backend/cpu/recurrent_state.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/progress.h"

namespace moeflux {

RecurrentStates::RecurrentStates(const std::vector<StateDesc>& states, StateBudget& budget) : budget_(budget) {
  for (const StateDesc& s : states) {
    offset_.push_back(total_);
    const size_t n = s.positional() ? 0 : s.fixed_floats;
    size_.push_back(n);
    total_ += n;
  }
  if (total_ == 0) return;
  if (!budget_.try_take(bytes()))
    fail_as(ErrorKind::Capacity,
            "the session state budget of {} is used up ({} in use by all sessions); the recurrent layers' state "
            "needs {} per session: raise the budget or end other sessions",
            human_bytes(budget_.limit()), human_bytes(budget_.used()), human_bytes(bytes()));
  try {
    buf_ = std::make_unique<float[]>(total_);  // zeroed: the state before the first token
  } catch (...) {
    budget_.give_back(bytes());
    throw;
  }
}

RecurrentStates::~RecurrentStates() {
  if (total_) budget_.give_back(bytes());
}

float* RecurrentStates::data(uint32_t state) {
  if (state >= size_.size() || size_[state] == 0)
    fail_as(ErrorKind::Internal, "cpu backend: layer state {} is not a recurrent state", state);
  return buf_.get() + offset_[state];
}

void RecurrentStates::clear() {
  if (total_) std::fill_n(buf_.get(), total_, 0.f);
}

std::vector<float> RecurrentStates::snapshot() const {
  return total_ ? std::vector<float>(buf_.get(), buf_.get() + total_) : std::vector<float>{};
}

void RecurrentStates::restore(const std::vector<float>& all) {
  if (all.size() != total_)
    fail_as(ErrorKind::Internal, "cpu backend: a state snapshot of {} floats for a session of {}", all.size(), total_);
  if (total_) std::memcpy(buf_.get(), all.data(), total_ * sizeof(float));
}

}  // namespace moeflux
