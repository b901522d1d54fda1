// The seam between the engine and the devices that compute. A backend runs
// planned graphs (graph/ir.h) on one kind of device; the engine owns one,
// and each session owns a BackendSession made by it, which holds that
// session's layer states (KV pages, and recurrent state as those layers
// arrive) and scratch. Nothing below this interface reads ModelSpec: every
// scalar an op needs is on the op, every buffer has a dtype, and routed
// experts come from the engine's ExpertSource.
//
// Adding a backend: implement these two classes in src/backend/<name>/,
// register it in make_backend (backend.cpp), and run the one-op harness
// (tests/backend/op_harness_test.cpp) against the CPU.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "experts/vram_slots.h"
#include "graph/ir.h"
#include "graph/planner.h"
#include "moeflux/expert_stats.h"

namespace moeflux {

class ExpertSource;
class StateBudget;
class ThreadPool;

// Called after each op with its output rows [rows, width] in host memory
// (a device backend copies them out): per-layer comparisons with a
// reference, and debugging. Slows a step down; off by default.
using OpObserver = std::function<void(size_t op_index, const Op& op, const float* out, int rows, int width)>;

// A copy of a session's non-positional (recurrent) layer states, made by
// the backend that holds them; only that backend's sessions of the same
// model read it back. Checkpoints keep one (Session::checkpoint).
class StateSnapshot {
 public:
  virtual ~StateSnapshot() = default;
  virtual uint64_t bytes() const = 0;
};

class BackendSession {
 public:
  virtual ~BackendSession() = default;
  // Runs g (planned by `plan`) on `tokens` at `positions` (g.tokens each),
  // updating the layer states. Throws Error; on error the states at
  // positions below positions[0] are untouched.
  virtual void run(const Graph& g, const BufferPlan& plan, std::span<const int32_t> tokens,
                   std::span<const int32_t> positions) = 0;
  // Copies the output buffer of the last run (g.output: rows x width f32)
  // to `dst`, in host memory.
  virtual void read_output(const Graph& g, std::span<float> dst) = 0;
  virtual void clear_states() = 0;            // forgets every position
  virtual uint64_t state_bytes() const = 0;   // bytes of layer state held now
  virtual void set_observer(OpObserver observer) = 0;
  // Copies out / puts back every non-positional layer state (the recurrent
  // layers'), for checkpoints of models that cannot rewind. A backend that
  // keeps no such state throws by default, naming itself.
  virtual std::shared_ptr<const StateSnapshot> snapshot_states() const;
  virtual void restore_states(const StateSnapshot& snapshot);
  // Saved sessions: appends the layer states of positions [0, positions)
  // to `out` (f32 in host byte order, state by state, keys then values of
  // each position), and sets them back from `in` (exactly that many
  // bytes) over those positions; on error nothing changed. The defaults
  // refuse: a backend without them cannot save or load sessions.
  virtual void export_states(int positions, std::vector<uint8_t>& out) const;
  virtual void import_states(int positions, std::span<const uint8_t> in);
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // A session's states (one per entry of `states`), for up to max_positions.
  virtual std::unique_ptr<BackendSession> new_session(const std::vector<StateDesc>& states, int max_positions) = 0;
  // Waits until all work issued is done (a no-op where calls are synchronous).
  virtual void synchronize() = 0;
  // Adds the counters of tiers the backend owns (a GPU's expert slots) to
  // the expert source's.
  virtual void add_tier_stats(ExpertStats& stats) const {}

  // Batched decode: one token for each of `sessions` (made by this backend
  // for the same states) in one pass of g (g.tokens == sessions.size(),
  // planned with logits for every row): row t is sessions[t]'s token
  // tokens[t] at positions[t]. The weights, and each routed expert, are
  // read once for all of them; each row's logits equal those of its
  // session's own one-token step. Row t's logits go to logits[t * vocab..].
  // A backend that cannot returns false from batches_sessions(), and the
  // engine steps the sessions one after another instead.
  virtual bool batches_sessions() const { return false; }
  virtual void run_batch(const Graph& g, const BufferPlan& plan, std::span<BackendSession* const> sessions,
                         std::span<const int32_t> tokens, std::span<const int32_t> positions, std::span<float> logits);
};

// What a backend gets from the engine: the expert source (routed experts by
// layer and id), the thread pool for host-side work, the state budget.
struct BackendContext {
  ExpertSource& experts;
  ThreadPool& pool;
  StateBudget& state_budget;
  // The device tier of routed experts (--expert-vram); off: every expert resident.
  VramTierOptions vram = {};
};

// "cpu" or "cuda" (when built with CUDA); throws naming the backends built
// in, or why the backend cannot run here (no GPU).
std::unique_ptr<Backend> make_backend(const std::string& name, const BackendContext& ctx);
std::vector<std::string> backend_names();
// Why backend `name` cannot run on this machine ("" when it can): not
// built in, no GPU present. Tests skip with this message.
std::string backend_unavailable_reason(const std::string& name);
// The backend for a --device choice: "cpu", "cuda", or "auto" (CUDA when
// it can run here, else the CPU); throws for any other name.
std::string backend_for_device(const std::string& device);

}  // namespace moeflux
