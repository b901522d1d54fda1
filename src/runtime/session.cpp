#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "runtime/engine_impl.h"

namespace moeflux {

Session::Impl::Impl(std::shared_ptr<Engine> e, int max_positions)
    : engine(std::move(e)),
      kv(engine->spec().layers, engine->spec().kv_dim(), max_positions > 0 ? max_positions : engine->spec().max_positions),
      exec(engine->spec(), engine->impl().weights, *engine->impl().experts, *engine->impl().pool) {}

Session::Session(std::shared_ptr<Engine> engine, int max_positions) {
  if (!engine) fail("Session needs a loaded engine");
  if (max_positions < 0) fail("max_positions must be >= 0, got {}", max_positions);
  impl_ = std::make_unique<Impl>(std::move(engine), max_positions);
}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

int Session::position() const { return impl_->position; }
int Session::max_positions() const { return impl_->kv.max_positions(); }
const Engine& Session::engine() const { return *impl_->engine; }

void Session::rewind(int position) {
  if (position < 0 || position > impl_->position)
    fail("cannot rewind to position {}: the session holds positions [0, {})", position, impl_->position);
  impl_->position = position;  // later steps overwrite the cache from here
}

void Session::reset() {
  impl_->position = 0;
  impl_->kv.clear();
}

std::span<const float> Session::step(std::span<const int32_t> tokens, bool all_logits) {
  Impl& s = *impl_;
  Engine::Impl& e = s.engine->impl();
  const int vocab = e.spec.vocab;
  if (tokens.empty()) fail("step needs at least one token");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      fail("token id {} at index {} is outside the vocabulary [0, {})", tokens[i], i, vocab);
  if (s.position + int64_t(tokens.size()) > s.kv.max_positions())
    fail("{} tokens at position {} exceed the context of {} positions", tokens.size(), s.position,
         s.kv.max_positions());

  const int n = int(tokens.size());
  const int chunk = e.options.max_micro_batch;
  s.logits.resize(size_t(all_logits ? n : 1) * size_t(vocab));
  for (int begin = 0; begin < n; begin += chunk) {
    const int T = std::min(chunk, n - begin);
    const bool last_chunk = begin + T == n;
    const StepPlan& p = e.plan_for(T, all_logits);
    s.arena.resize(std::max(s.arena.size(), (p.plan.arena_bytes + sizeof(float) - 1) / sizeof(float)));
    s.positions.resize(size_t(T));
    for (int t = 0; t < T; ++t) s.positions[size_t(t)] = s.position + t;
    const float* out = s.exec.run(p.graph, p.plan, s.arena.data(), tokens.data() + begin, s.positions.data(), s.kv);
    s.position += T;
    if (all_logits)
      std::memcpy(&s.logits[size_t(begin) * vocab], out, sizeof(float) * size_t(T) * vocab);
    else if (last_chunk)
      std::memcpy(s.logits.data(), out, sizeof(float) * size_t(vocab));
  }
  return s.logits;
}

}  // namespace moeflux
