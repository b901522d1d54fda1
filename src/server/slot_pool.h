// The sessions a server keeps on one engine, and the bounded queue of
// requests waiting for one. A slot keeps its session (KV state) and the
// tokens it holds after a request ends, so that a later request sharing a
// prefix (the same conversation one turn on, the same system prompt) starts
// where they diverge: acquire() hands out the free slot with the longest
// common prefix. State bytes are charged to the engine's state budget; when
// a request does not fit, evict_idle() frees the idle slots' state.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "moeflux/engine.h"

namespace moeflux::server {

struct Slot {
  Session session;
  // The tokens whose state the session holds: always session.position() long.
  std::vector<int32_t> cached;
  bool busy = false;
  explicit Slot(std::shared_ptr<Engine> e, int context) : session(std::move(e), context) {}
};

class SlotPool {
 public:
  SlotPool(std::shared_ptr<Engine> engine, int slots, int max_queue, int context);

  class Lease {
   public:
    Lease(SlotPool& pool, Slot& slot) : pool_(pool), slot_(slot) {}
    ~Lease() { pool_.release(slot_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Slot& slot() { return slot_; }

   private:
    SlotPool& pool_;
    Slot& slot_;
  };

  // Waits for a free slot, the one sharing the longest prefix with `prompt`
  // (on a tie, the one caching the least).
  // Throws ApiError 503 (with Retry-After) when max_queue requests already wait.
  std::unique_ptr<Lease> acquire(std::span<const int32_t> prompt);

  // Frees the state of every idle slot (their cached prefixes are lost);
  // returns the bytes freed.
  uint64_t evict_idle();

  int waiting() const;
  int busy() const;
  int size() const { return int(slots_.size()); }
  int context() const;

 private:
  void release(Slot& slot);
  mutable std::mutex mu_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Slot>> slots_;
  int max_queue_, waiting_ = 0;
};

// Moves the slot's session to the longest prefix of `prompt` it can resume
// from (rewinding where every layer state is per position, else only when
// the whole cache is a prefix) and returns its length; never the whole
// prompt, since at least one token must run to give logits.
size_t resume_prefix(Slot& slot, std::span<const int32_t> prompt);

size_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b);

}  // namespace moeflux::server
