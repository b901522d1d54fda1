#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>

#include "backend/cpu/executor.h"
#include "core/error.h"

namespace moeflux {

namespace {

class CpuSnapshot final : public StateSnapshot {
 public:
  CpuSnapshot(const void* owner, std::vector<float> floats) : owner(owner), floats(std::move(floats)) {}
  uint64_t bytes() const override { return floats.size() * sizeof(float); }
  const void* owner;  // the session whose states these are
  std::vector<float> floats;
};

class CpuSession final : public BackendSession {
 public:
  CpuSession(const BackendContext& ctx, const std::vector<StateDesc>& states, int max_positions)
      : kv_(states, max_positions, ctx.state_budget), rs_(states, ctx.state_budget), exec_(ctx.experts, ctx.pool) {}

  void run(const Graph& g, const BufferPlan& plan, std::span<const int32_t> tokens,
           std::span<const int32_t> positions) override {
    if (tokens.size() != size_t(g.tokens) || positions.size() != size_t(g.tokens))
      fail_as(ErrorKind::Internal, "cpu backend: {} tokens and {} positions for a graph of {} tokens", tokens.size(),
              positions.size(), g.tokens);
    if (g.states.size() != kv_.states())
      fail_as(ErrorKind::Internal, "cpu backend: graph has {} layer states, the session {}", g.states.size(),
              kv_.states());
    arena_.resize(std::max(arena_.size(), (plan.arena_bytes + sizeof(float) - 1) / sizeof(float)));
    output_ = exec_.run(g, plan, arena_.data(), tokens.data(), positions.data(), kv_, rs_);
  }

  void read_output(const Graph& g, std::span<float> dst) override {
    const BufferDesc& d = g.buffers[g.output.index];
    const size_t n = size_t(d.rows) * size_t(d.width);
    if (!output_ || dst.size() < n) fail_as(ErrorKind::Internal, "cpu backend: no output to read, or {} < {}", dst.size(), n);
    std::memcpy(dst.data(), output_, n * sizeof(float));
  }

  void clear_states() override {
    kv_.clear();
    rs_.clear();
  }
  uint64_t state_bytes() const override { return kv_.bytes() + rs_.bytes(); }
  void set_observer(OpObserver observer) override { exec_.set_observer(std::move(observer)); }
  // The positional states, then the recurrent layers' blocks (fixed size).
  void export_states(int positions, std::vector<uint8_t>& out) const override {
    kv_.copy_out(positions, out);
    const std::vector<float> fixed = rs_.snapshot();
    const auto* b = reinterpret_cast<const uint8_t*>(fixed.data());
    out.insert(out.end(), b, b + fixed.size() * sizeof(float));
  }
  void import_states(int positions, std::span<const uint8_t> in) override {
    const size_t fixed = rs_.bytes();
    if (in.size() < fixed)
      fail("session state of {} bytes; this model's recurrent layers alone need {}", in.size(), fixed);
    kv_.copy_in(positions, in.first(in.size() - fixed));  // checks its size; throws before changing anything
    std::vector<float> block(fixed / sizeof(float));
    std::memcpy(block.data(), in.data() + (in.size() - fixed), fixed);
    rs_.restore(block);
  }

  CpuExecutor::RowStates row_states() { return {&kv_, &rs_}; }
  size_t states() const { return kv_.states(); }

  std::shared_ptr<const StateSnapshot> snapshot_states() const override {
    return std::make_shared<CpuSnapshot>(this, rs_.snapshot());
  }
  void restore_states(const StateSnapshot& snapshot) override {
    const auto* s = dynamic_cast<const CpuSnapshot*>(&snapshot);
    if (!s || s->owner != this)
      fail_as(ErrorKind::Internal, "cpu backend: a state snapshot of another session or backend");
    rs_.restore(s->floats);
  }

 private:
  KvCache kv_;
  RecurrentStates rs_;
  CpuExecutor exec_;
  std::vector<float> arena_;
  const float* output_ = nullptr;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendContext& ctx) : ctx_(ctx) {}
  std::string name() const override { return "cpu"; }
  std::unique_ptr<BackendSession> new_session(const std::vector<StateDesc>& states, int max_positions) override {
    return std::make_unique<CpuSession>(ctx_, states, max_positions);
  }
  void synchronize() override {}

  bool batches_sessions() const override { return true; }
  void run_batch(const Graph& g, const BufferPlan& plan, std::span<BackendSession* const> sessions,
                 std::span<const int32_t> tokens, std::span<const int32_t> positions,
                 std::span<float> logits) override {
    const size_t n = sessions.size();
    if (n == 0 || n != size_t(g.tokens) || tokens.size() != n || positions.size() != n)
      fail_as(ErrorKind::Internal, "cpu backend: a batch of {} sessions, {} tokens, {} positions for a graph of {}",
              n, tokens.size(), positions.size(), g.tokens);
    std::vector<CpuExecutor::RowStates> rows;
    rows.reserve(n);
    for (BackendSession* b : sessions) {
      auto* s = dynamic_cast<CpuSession*>(b);
      if (!s) fail_as(ErrorKind::Internal, "cpu backend: a batch with a session of another backend");
      if (s->states() != g.states.size())
        fail_as(ErrorKind::Internal, "cpu backend: graph has {} layer states, a session {}", g.states.size(),
                s->states());
      rows.push_back(s->row_states());
    }
    const BufferDesc& out = g.buffers[g.output.index];
    const size_t out_floats = size_t(out.rows) * size_t(out.width);
    if (out.rows != g.tokens || logits.size() < out_floats)
      fail_as(ErrorKind::Internal, "cpu backend: a batched graph must give logits for each of its {} rows",
              g.tokens);
    arena_.resize(std::max(arena_.size(), (plan.arena_bytes + sizeof(float) - 1) / sizeof(float)));
    const float* o = batch_exec_.run_rows(g, plan, arena_.data(), tokens.data(), positions.data(), rows);
    std::memcpy(logits.data(), o, out_floats * sizeof(float));
  }

 private:
  BackendContext ctx_;
  // The batched step's own executor (MoE scratch) and arena: a batch is one
  // pass over the rows of many sessions, owned by none of them.
  CpuExecutor batch_exec_{ctx_.experts, ctx_.pool};
  std::vector<float> arena_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendContext& ctx) { return std::make_unique<CpuBackend>(ctx); }

}  // namespace moeflux
