#include "server/prefix_cache.h"

#include <algorithm>

#include "server/slot_pool.h"

namespace moeflux::server {


void PrefixCache::put(const Session& session, std::span<const int32_t> tokens) {
  if (!enabled() || tokens.size() < min_tokens_ || int(tokens.size()) != session.position()) return;
  {
    std::lock_guard lk(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->tokens.size() >= tokens.size() && common_prefix(it->tokens, tokens) == tokens.size()) {
        entries_.splice(entries_.begin(), entries_, it);  // covered: only touch it
        return;
      }
  }
  // Copied outside the lock: the state may be large.
  auto state = std::make_shared<const std::string>(session.save_to_bytes());
  if (state->size() > budget_) return;
  std::lock_guard lk(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (common_prefix(it->tokens, tokens) == it->tokens.size()) {  // the new entry covers it
      stats_.bytes -= it->state->size();
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  entries_.push_front(Entry{std::vector<int32_t>(tokens.begin(), tokens.end()), state});
  stats_.bytes += state->size();
  while (stats_.bytes > budget_) {
    stats_.bytes -= entries_.back().state->size();
    entries_.pop_back();
    ++stats_.evictions;
  }
  stats_.entries = entries_.size();
}

bool PrefixCache::restore(Session& session, std::span<const int32_t> prompt, size_t better_than,
                          std::vector<int32_t>& cached) {
  if (!enabled()) return false;
  std::shared_ptr<const std::string> state;
  std::vector<int32_t> tokens;
  {
    std::lock_guard lk(mu_);
    auto best = entries_.end();
    size_t best_n = better_than;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      size_t n = common_prefix(it->tokens, prompt);
      // A model whose state is not all per position resumes only from a whole entry.
      if (!session.can_rewind() && n != it->tokens.size()) continue;
      if (n > best_n) best = it, best_n = n;
    }
    if (best == entries_.end()) return false;
    entries_.splice(entries_.begin(), entries_, best);
    state = best->state;
    tokens = best->tokens;
    ++stats_.hits;
    stats_.tokens_restored += best_n;
  }
  session.load_from_bytes(*state, "prefix cache entry");
  cached = std::move(tokens);
  return true;
}

PrefixCache::Stats PrefixCache::stats() const {
  std::lock_guard lk(mu_);
  Stats s = stats_;
  s.entries = entries_.size();
  return s;
}

}  // namespace moeflux::server
