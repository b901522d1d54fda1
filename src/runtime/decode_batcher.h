// Gathers the one-token decode steps that threads submit at about the same
// time into batched steps (Session::step_batch), for a server generating
// for several clients at once: each expert is then fetched once per step
// for all of them.
//
// No timer and no waiting for company: the first thread to find no batch
// running leads, takes every step queued so far and runs them as one pass;
// the steps submitted while it runs form the next batch. Alone, a step runs
// as soon as it is submitted (a batch of one); under load, the clients'
// steps fall into step with each other after one round.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <span>
#include <vector>

#include "moeflux/engine.h"

namespace moeflux {

class DecodeBatcher {
 public:
  // session.step() of one token, batched with the other threads' steps;
  // returns session.logits(). Throws what that session's own step would
  // throw: a batch that fails is run again session by session, so one
  // session's error (its context full, an I/O error) is only its own.
  std::span<const float> step(Session& session, int32_t token);

  struct Stats {
    uint64_t batches = 0, steps = 0;  // passes run, session steps in them
    int largest = 0;                  // most sessions in one pass
  };
  Stats stats() const;

 private:
  struct Pending {
    Session* session;
    int32_t token;
    bool done = false;
    std::exception_ptr error;
  };
  void run(std::vector<Pending*>& batch);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending*> queue_;
  bool leading_ = false;
  Stats stats_;
};

}  // namespace moeflux
