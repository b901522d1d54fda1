// The engine-wide byte budget for session state (KV pages today; latent and
// recurrent state as those layer kinds arrive). Every session of an engine
// draws its pages from it, so many sessions cannot together take more than
// the user allowed; a step that would exceed it fails with a capacity
// error and leaves its session as it was.
#pragma once
#include <atomic>
#include <cstdint>

namespace moeflux {

class StateBudget {
 public:
  explicit StateBudget(uint64_t limit_bytes = 0) : limit_(limit_bytes) {}  // 0: no limit
  // Takes `bytes` when they fit; false (and nothing taken) otherwise.
  bool try_take(uint64_t bytes) {
    uint64_t used = used_.load(std::memory_order_relaxed);
    do {
      if (limit_ && used + bytes > limit_) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
    return true;
  }
  void give_back(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t limit() const { return limit_; }

 private:
  uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

}  // namespace moeflux
