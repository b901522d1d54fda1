// Engine and Session internals, shared by the runtime and the tools/tests
// that need to look inside (inspect, per-layer oracle checks).
#pragma once
#include <map>
#include <mutex>

#include "backend/cpu/executor.h"
#include "experts/expert_source.h"
#include "format/safetensors.h"
#include "graph/planner.h"
#include "model/arch.h"
#include "model/model_spec.h"
#include "model/weights.h"
#include "moeflux/engine.h"
#include "runtime/kv_cache.h"

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
  std::unique_ptr<ThreadPool> pool;

  // One plan per (token count, all_logits), built on first use.
  const StepPlan& plan_for(int tokens, bool all_logits);
  std::mutex plans_mu;
  std::map<std::pair<int, bool>, std::unique_ptr<StepPlan>> plans;
};

struct Session::Impl {
  std::shared_ptr<Engine> engine;
  KvCache kv;
  CpuExecutor exec;
  int position = 0;
  std::vector<float> arena;
  std::vector<float> logits;
  std::vector<int32_t> positions;

  Impl(std::shared_ptr<Engine> e, int max_positions);
};

}  // namespace moeflux
