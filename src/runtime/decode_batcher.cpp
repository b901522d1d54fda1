#include "runtime/decode_batcher.h"

#include <algorithm>

namespace moeflux {

std::span<const float> DecodeBatcher::step(Session& session, int32_t token) {
  Pending mine{&session, token, false, nullptr};
  std::unique_lock lock(mu_);
  queue_.push_back(&mine);
  while (!mine.done) {
    if (leading_) {
      cv_.wait(lock);
      continue;
    }
    leading_ = true;
    std::vector<Pending*> batch;
    batch.swap(queue_);
    lock.unlock();
    run(batch);
    lock.lock();
    for (Pending* p : batch) p->done = true;
    ++stats_.batches;
    stats_.steps += batch.size();
    stats_.largest = std::max(stats_.largest, int(batch.size()));
    leading_ = false;
    cv_.notify_all();
  }
  if (mine.error) std::rethrow_exception(mine.error);
  return session.logits();
}

void DecodeBatcher::run(std::vector<Pending*>& batch) {
  std::vector<Session*> sessions;
  std::vector<int32_t> tokens;
  std::vector<int> before;
  for (Pending* p : batch) {
    sessions.push_back(p->session);
    tokens.push_back(p->token);
    before.push_back(p->session->position());
  }
  try {
    Session::step_batch(sessions, tokens);
    return;
  } catch (...) {
    if (batch.size() == 1) {
      batch[0]->error = std::current_exception();
      return;
    }
  }
  // Which session failed, and whether the others can go on: each alone,
  // but for those a completed pass of the batch already stepped.
  for (size_t i = 0; i < batch.size(); ++i) {
    Pending* p = batch[i];
    if (p->session->position() != before[i]) continue;
    try {
      p->session->step(std::span<const int32_t>(&p->token, 1));
    } catch (...) {
      p->error = std::current_exception();
    }
  }
}

DecodeBatcher::Stats DecodeBatcher::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace moeflux
