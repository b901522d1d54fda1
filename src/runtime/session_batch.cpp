// Session::step_batch: one decode step of many sessions in one pass.
//
// Serving N conversations one step at a time reads the dense weights N
// times per round and every expert that two of them route to twice; a
// batched step reads each once. The graph is the one a prompt of N tokens
// uses (logits for every row); the backend runs its stateless ops over all
// rows and its stateful ops (attention, recurrent layers) row by row on
// each session's own states (Backend::run_batch).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "core/error.h"
#include "runtime/engine_impl.h"

namespace moeflux {

namespace {

bool row_finite(const float* v, size_t n) {
  bool ok = true;
  for (size_t i = 0; i < n; ++i) ok &= std::isfinite(v[i]);
  return ok;
}

}  // namespace

void Session::step_batch(std::span<Session* const> sessions, std::span<const int32_t> tokens) {
  if (sessions.size() != tokens.size())
    fail("step_batch: {} sessions but {} tokens (one token per session)", sessions.size(), tokens.size());
  if (sessions.empty()) return;
  Engine::Impl& e = sessions[0]->impl_->engine->impl();
  std::unordered_set<const Session*> seen;
  for (size_t i = 0; i < sessions.size(); ++i) {
    const Session* s = sessions[i];
    if (!s) fail("step_batch: session {} is null", i);
    if (&s->impl_->engine->impl() != &e) fail("step_batch: session {} belongs to another engine", i);
    if (!seen.insert(s).second) fail("step_batch: session {} appears twice", i);
    s->impl_->check_step(tokens.subspan(i, 1));
  }
  if (sessions.size() == 1 || !e.backend->batches_sessions()) {
    for (size_t i = 0; i < sessions.size(); ++i) sessions[i]->step(tokens.subspan(i, 1));
    return;
  }

  const int vocab = e.spec.vocab;
  const auto turn = e.scheduler->turn();
  // Batches larger than a micro-batch run as several passes.
  const size_t chunk = size_t(std::max(1, e.options.max_micro_batch));
  std::vector<float> logits;
  std::vector<int32_t> positions;
  std::vector<BackendSession*> backends;
  for (size_t begin = 0; begin < sessions.size(); begin += chunk) {
    const size_t n = std::min(chunk, sessions.size() - begin);
    const auto group = sessions.subspan(begin, n);
    const auto group_tokens = tokens.subspan(begin, n);
    positions.resize(n);
    backends.resize(n);
    for (size_t i = 0; i < n; ++i) {
      Impl& s = *group[i]->impl_;
      positions[i] = s.position;
      backends[i] = s.backend.get();
      // The same checkpoint bookkeeping as a one-token step().
      if (s.position < s.high_water) s.overwrites.push_back({s.serial, s.position});
      ++s.serial;
      s.high_water = std::max(s.high_water, s.position + 1);
    }
    const StepPlan& p = e.plan_for(int(n), true);
    logits.resize(n * size_t(vocab));
    // Positions move only once the pass succeeded; a recurrent state was
    // advanced in place by then and no longer matches a position that did
    // not move, as for a failed step().
    auto lose_recurrent_states = [&] {
      for (Session* s : group)
        if (!s->can_rewind()) s->impl_->recurrent_state_lost = true;
    };
    try {
      e.backend->run_batch(p.graph, p.plan, backends, group_tokens, positions, logits);
    } catch (...) {
      lose_recurrent_states();
      throw;
    }
    for (size_t i = 0; i < n; ++i)
      if (!row_finite(&logits[i * size_t(vocab)], size_t(vocab))) {
        lose_recurrent_states();
        fail("the model computed non-finite logits for session {} of a batched step at position {}; step it alone "
             "to find the op",
             begin + i, positions[i]);
      }
    for (size_t i = 0; i < n; ++i) {
      Impl& s = *group[i]->impl_;
      s.logits.assign(logits.begin() + ptrdiff_t(i * size_t(vocab)), logits.begin() + ptrdiff_t((i + 1) * size_t(vocab)));
      s.position += 1;
    }
  }
}

}  // namespace moeflux
