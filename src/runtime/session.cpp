#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "runtime/engine_impl.h"

namespace moeflux {

namespace {

std::atomic<uint64_t> g_next_session_id{1};

bool all_finite(std::span<const float> v) {
  bool ok = true;
  for (float x : v) ok &= std::isfinite(x);  // no early exit: vectorises
  return ok;
}

// Where a step's first NaN or infinity appears: the micro-batch runs again
// with an observer (the session's position has not moved, so it writes the
// same state rows again), naming the op, its output and its layer.
std::string locate_non_finite(BackendSession& b, const Graph& g, const BufferPlan& plan,
                              std::span<const int32_t> tokens, std::span<const int32_t> positions) {
  std::string where;
  int layer = -1;
  b.set_observer([&](size_t i, const Op& op, const float* out, int rows, int width) {
    // Each layer's token mixer has one of these (attention, MLA, or a recurrent layer's conv).
    if (std::holds_alternative<OpKvAppend>(op) || std::holds_alternative<OpLatentAppend>(op) ||
        std::holds_alternative<OpCausalConv>(op))
      ++layer;
    if (!where.empty() || all_finite({out, size_t(rows) * size_t(width)})) return;
    const auto writes = op_writes(op);
    const std::string buf = writes.empty() ? "" : g.buffers[writes[0]].name;
    const std::string at = layer < 0 ? "before the first layer"
                           : buf == "final_norm" || buf == "logits" ? "after the last layer"
                                                                     : fmt::format("in layer {}", layer);
    where = fmt::format("first in op {} ({} -> '{}') {}", i, op_name(op), buf, at);
  });
  try {
    b.run(g, plan, tokens, positions);
  } catch (...) {
    b.set_observer({});
    throw;
  }
  b.set_observer({});
  return where.empty() ? "not reproduced when the step ran again" : where;
}

}  // namespace

Session::Impl::Impl(std::shared_ptr<Engine> e, int max_pos)
    : engine(std::move(e)),
      id(g_next_session_id++),
      max_positions(max_pos > 0 ? max_pos : engine->spec().max_positions) {
  Engine::Impl& m = engine->impl();
  backend = m.backend->new_session(m.states, max_positions);
}

Session::Session(std::shared_ptr<Engine> engine, int max_positions) {
  if (!engine) fail("Session needs a loaded engine");
  if (max_positions < 0) fail("max_positions must be >= 0, got {}", max_positions);
  impl_ = std::make_unique<Impl>(std::move(engine), max_positions);
}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

int Session::position() const { return impl_->position; }
int Session::max_positions() const { return impl_->max_positions; }
uint64_t Session::state_bytes() const { return impl_->backend->state_bytes(); }
const Engine& Session::engine() const { return *impl_->engine; }

bool Session::can_rewind() const {
  const auto& states = impl_->engine->impl().states;
  return std::all_of(states.begin(), states.end(), [](const StateDesc& s) { return s.positional(); });
}

void Session::rewind(int position) {
  if (position < 0 || position > impl_->position)
    fail("cannot rewind to position {}: the session holds positions [0, {})", position, impl_->position);
  if (!can_rewind()) fail("this model keeps recurrent state, which cannot be rewound: restore a checkpoint instead");
  impl_->position = position;  // later steps overwrite the cache from here
}

void Session::reset() {
  Impl& s = *impl_;
  s.position = 0;
  s.backend->clear_states();
  s.overwrites.push_back({s.serial, 0});  // every checkpoint above 0 is gone
  s.high_water = 0;
  s.recurrent_state_lost = false;
}

SessionCheckpoint Session::checkpoint() const {
  if (impl_->recurrent_state_lost)
    fail("no checkpoint can be taken: a failed step left the recurrent layer state behind the position; reset() or "
         "restore() an earlier checkpoint");
  SessionCheckpoint cp{impl_->position, impl_->id, impl_->serial, nullptr};
  // Recurrent state is overwritten by every step: the checkpoint keeps a copy.
  if (!can_rewind()) cp.states = impl_->backend->snapshot_states();
  return cp;
}

bool Session::can_restore(const SessionCheckpoint& cp) const {
  const Impl& s = *impl_;
  if (cp.session_id != s.id || cp.position > s.high_water) return false;
  if (!can_rewind() && !cp.states) return false;
  // Invalid once a step since the checkpoint wrote a position below it.
  return std::none_of(s.overwrites.begin(), s.overwrites.end(),
                      [&](const auto& o) { return o.first >= cp.serial && o.second < cp.position; });
}

void Session::restore(const SessionCheckpoint& cp) {
  if (cp.session_id != impl_->id) fail("checkpoint of another session (id {}, this is {})", cp.session_id, impl_->id);
  if (!can_restore(cp))
    fail("checkpoint at position {} is no longer valid: the session has since rewritten positions below it",
         cp.position);
  if (cp.states) impl_->backend->restore_states(*cp.states);
  impl_->position = cp.position;
  impl_->recurrent_state_lost = false;
}

void Session::Impl::check_step(std::span<const int32_t> tokens) const {
  const int vocab = engine->spec().vocab;
  if (tokens.empty()) fail("step needs at least one token");
  if (recurrent_state_lost)
    fail("an earlier step failed after changing the recurrent layer state, which no longer matches position {}: "
         "reset() or restore() a checkpoint first",
         position);
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      fail("token id {} at index {} is outside the vocabulary [0, {})", tokens[i], i, vocab);
  if (position + int64_t(tokens.size()) > max_positions)
    fail_as(ErrorKind::Capacity, "{} tokens at position {} exceed the context of {} positions", tokens.size(),
            position, max_positions);
}

std::span<const float> Session::logits() const { return impl_->logits; }

std::span<const float> Session::step(std::span<const int32_t> tokens, bool all_logits) {
  Impl& s = *impl_;
  Engine::Impl& e = s.engine->impl();
  const int vocab = e.spec.vocab;
  s.check_step(tokens);

  const int n = int(tokens.size());
  const int chunk = e.options.max_micro_batch;
  // The position moves only when every micro-batch has run, so a step that
  // fails (I/O, a file changed, a capacity limit) leaves the session as it
  // was: the state rows it wrote lie at or past the position and are
  // written again before any step reads them. Checkpoints above the
  // position are invalid from here on, whether the step succeeds or not.
  int position = s.position;
  if (position < s.high_water) s.overwrites.push_back({s.serial, position});
  ++s.serial;
  const auto turn = e.scheduler->turn();
  const bool rewindable = can_rewind();
  s.logits.resize(size_t(all_logits ? n : 1) * size_t(vocab));
  for (int begin = 0; begin < n; begin += chunk) {
    const int T = std::min(chunk, n - begin);
    const bool last_chunk = begin + T == n;
    const StepPlan& p = e.plan_for(T, all_logits);
    s.positions.resize(size_t(T));
    for (int t = 0; t < T; ++t) s.positions[size_t(t)] = position + t;
    s.high_water = std::max(s.high_water, position + T);
    const auto chunk_tokens = tokens.subspan(size_t(begin), size_t(T));
    // A recurrent state is advanced in place: a failure once a micro-batch
    // has started leaves it ahead of the position.
    try {
      s.backend->run(p.graph, p.plan, chunk_tokens, s.positions);
      std::span<float> out;
      if (all_logits)
        out = std::span<float>(&s.logits[size_t(begin) * vocab], size_t(T) * vocab);
      else if (last_chunk)
        out = std::span<float>(s.logits.data(), size_t(vocab));
      if (!out.empty()) {
        s.backend->read_output(p.graph, out);
        // NaN logits would be sampled as garbage (or token 0) with no sign of
        // trouble: refuse them, naming where they first appear.
        if (!all_finite(out))
          fail("the model computed non-finite logits at positions {}..{}: {}; its weights or config values "
               "(eps, rope theta, scales) give NaN or infinity there",
               position, position + T - 1,
               locate_non_finite(*s.backend, p.graph, p.plan, chunk_tokens, s.positions));
      }
    } catch (...) {
      if (!rewindable) s.recurrent_state_lost = true;
      throw;
    }
    position += T;
  }
  s.position = position;
  return s.logits;
}

}  // namespace moeflux
