// Engine and Session internals, shared by the runtime and the tools/tests
// that need to look inside (inspect, per-layer oracle checks).
#pragma once
#include <map>
#include <mutex>

#include "backend/backend.h"
#include "backend/state_budget.h"
#include "experts/expert_source.h"
#include "format/safetensors.h"
#include "graph/planner.h"
#include "model/arch.h"
#include "model/model_spec.h"
#include "model/weights.h"
#include "moeflux/engine.h"
#include "runtime/step_scheduler.h"

namespace moeflux {

struct StepPlan {
  Graph graph;
  BufferPlan plan;
};

struct Engine::Impl {
  ModelSpec spec;
  EngineOptions options;
  const ArchDef* arch = nullptr;
  std::unique_ptr<TensorTable> files;
  ModelWeights weights;
  std::unique_ptr<ExpertSource> experts;
  std::unique_ptr<StepScheduler> scheduler;  // owns the thread pool; one step at a time
  std::unique_ptr<StateBudget> state_budget;
  std::unique_ptr<Backend> backend;
  std::vector<StateDesc> states;  // each layer's persistent state
  VramTierOptions vram;           // --expert-vram, resolved at load

  // Swaps the expert source (tests: fault-injecting stores) and remakes the
  // backend, which holds a reference to it; no session may exist. Null
  // drops both (a store drains its reads on destruction).
  void replace_experts(std::unique_ptr<ExpertSource> source);
  void make_backend_for_experts();

  // One plan per (token count, all_logits), built on first use.
  const StepPlan& plan_for(int tokens, bool all_logits);
  // Throws naming the fields of `g`'s ops that only the CPU backend computes
  // (gpt-oss's), unless the backend is the CPU one.
  void refuse_cpu_only_fields(const Graph& g) const;
  std::mutex plans_mu;
  std::map<std::pair<int, bool>, std::unique_ptr<StepPlan>> plans;
};

struct Session::Impl {
  std::shared_ptr<Engine> engine;
  std::unique_ptr<BackendSession> backend;
  uint64_t id = 0;
  int position = 0, max_positions = 0;
  // Checkpoint bookkeeping: steps run so far, the highest position ever
  // written, and the steps that wrote below it ((serial, first position)),
  // which invalidate checkpoints above that position.
  uint64_t serial = 0;
  int high_water = 0;
  std::vector<std::pair<uint64_t, int>> overwrites;
  // A step failed after a micro-batch had advanced the recurrent state in
  // place (models that cannot rewind): that state no longer matches the
  // position, so the next step refuses until reset() or restore().
  bool recurrent_state_lost = false;
  std::vector<float> logits;
  std::vector<int32_t> positions;

  Impl(std::shared_ptr<Engine> e, int max_positions);
  // Refuses a step of `tokens` (ids outside the vocabulary, beyond the
  // context, after a failure that lost the recurrent state), naming why.
  void check_step(std::span<const int32_t> tokens) const;
};

}  // namespace moeflux
