// Admits the steps of many sessions on one engine. The CPU backend's thread
// pool serves one parallel loop at a time (its contract: one caller at a
// time), and the expert store's prefetch and statistics are per engine, so
// two sessions stepped at once from two threads used to race (logits
// different from the sequential run in 3 of 200 tries). The scheduler owns
// the pool and runs one step at a time; a session's state is its own, so a
// step under the scheduler gives exactly the logits of the same step run
// alone. Batching the decode steps of several sessions into one pass (each
// expert fetched once for all of them) builds on this in the server.
#pragma once
#include <memory>
#include <mutex>

#include "core/thread_pool.h"

namespace moeflux {

class StepScheduler {
 public:
  explicit StepScheduler(int threads) : pool_(threads) {}

  // Held for the whole of one step (all its micro-batches), so that a
  // session's prefill is not interleaved with another session's steps.
  [[nodiscard]] std::unique_lock<std::mutex> turn() { return std::unique_lock(mu_); }

  // The pool. Use it only while holding a turn, or when no session steps
  // (the CLI's benchmarks measure memory bandwidth with it before running).
  ThreadPool& pool() { return pool_; }
  int threads() const { return pool_.size(); }

 private:
  std::mutex mu_;
  ThreadPool pool_;
};

}  // namespace moeflux
