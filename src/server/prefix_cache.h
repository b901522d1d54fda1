// Saved states of earlier requests, kept in RAM under a byte budget with
// least-recently-used eviction, so that a request sharing a long prefix with
// one that ran before (a common system prompt, an earlier turn of the same
// conversation) resumes from there even when no slot still holds it. An
// entry holds a session's state for a token sequence and serves any prefix
// of it (KV state is per position: the session rewinds to the shared
// length). A slot's own cache is used when it shares at least as much.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "moeflux/engine.h"

namespace moeflux::server {

class PrefixCache {
 public:
  // budget 0: the cache is off. Sequences shorter than min_tokens are not
  // kept (recomputing them is cheap).
  PrefixCache(uint64_t budget_bytes, size_t min_tokens) : budget_(budget_bytes), min_tokens_(min_tokens) {}

  // Keeps the state `session` holds for `tokens` (its whole history),
  // unless an entry already covers them; entries the new one covers go.
  void put(const Session& session, std::span<const int32_t> tokens);

  // When an entry shares more than `better_than` tokens with `prompt`,
  // loads it into `session`, sets `cached` to its tokens and returns true.
  bool restore(Session& session, std::span<const int32_t> prompt, size_t better_than, std::vector<int32_t>& cached);

  struct Stats {
    uint64_t bytes = 0, entries = 0, hits = 0, tokens_restored = 0, evictions = 0;
  };
  Stats stats() const;
  bool enabled() const { return budget_ > 0; }

 private:
  struct Entry {
    std::vector<int32_t> tokens;
    std::shared_ptr<const std::string> state;  // Session::save_to_bytes
  };
  mutable std::mutex mu_;
  std::list<Entry> entries_;  // most recently used first
  uint64_t budget_;
  size_t min_tokens_;
  Stats stats_;
};

}  // namespace moeflux::server
