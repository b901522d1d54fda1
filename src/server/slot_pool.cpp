#include "server/slot_pool.h"

#include <fmt/format.h>

#include "server/api_error.h"

namespace moeflux::server {

size_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

SlotPool::SlotPool(std::shared_ptr<Engine> engine, int slots, int max_queue, int context) : max_queue_(max_queue) {
  for (int i = 0; i < slots; ++i) slots_.push_back(std::make_unique<Slot>(engine, context));
}

std::unique_ptr<SlotPool::Lease> SlotPool::acquire(std::span<const int32_t> prompt) {
  std::unique_lock lk(mu_);
  auto best_free = [&]() -> Slot* {
    Slot* best = nullptr;
    size_t best_n = 0;
    for (auto& s : slots_) {
      if (s->busy) continue;
      // Ties go to the slot holding the least, so that other caches stay
      // for the requests that share them (evict_idle frees them when the
      // state budget runs short).
      const size_t n = common_prefix(s->cached, prompt);
      if (!best || n > best_n || (n == best_n && s->cached.size() < best->cached.size())) best = s.get(), best_n = n;
    }
    return best;
  };
  Slot* slot = best_free();
  if (!slot) {
    if (waiting_ >= max_queue_) {
      ApiError e(503, fmt::format("the server is busy: {} requests are running and {} are waiting (--max-queue); retry "
                                  "later", slots_.size(), waiting_),
                 "", "server_overloaded", "queue_full");
      e.retry_after_s = 1;
      throw e;
    }
    ++waiting_;
    freed_.wait(lk, [&] { return (slot = best_free()) != nullptr; });
    --waiting_;
  }
  slot->busy = true;
  return std::make_unique<Lease>(*this, *slot);
}

void SlotPool::release(Slot& slot) {
  {
    std::lock_guard lk(mu_);
    slot.busy = false;
  }
  freed_.notify_one();
}

uint64_t SlotPool::evict_idle() {
  std::lock_guard lk(mu_);
  uint64_t freed = 0;
  for (auto& s : slots_) {
    if (s->busy) continue;
    freed += s->session.state_bytes();
    s->session.reset();
    s->cached.clear();
  }
  return freed;
}

int SlotPool::waiting() const {
  std::lock_guard lk(mu_);
  return waiting_;
}

int SlotPool::busy() const {
  std::lock_guard lk(mu_);
  int n = 0;
  for (auto& s : slots_) n += s->busy;
  return n;
}

int SlotPool::context() const { return slots_.empty() ? 0 : slots_[0]->session.max_positions(); }

size_t resume_prefix(Slot& slot, std::span<const int32_t> prompt) {
  size_t common = common_prefix(slot.cached, prompt);
  if (common == prompt.size() && common > 0) --common;
  if (slot.session.can_rewind()) {
    slot.session.rewind(int(common));
  } else if (common != slot.cached.size()) {
    slot.session.reset();
    common = 0;
  }
  slot.cached.resize(common);
  return common;
}

}  // namespace moeflux::server
