// Runs a planned graph on the CPU. Owns per-session scratch (the MoE op's),
// so one executor serves one session at a time. Reads nothing but the
// graph: every scalar an op needs is on the op.
#pragma once
#include "backend/backend.h"
#include "backend/cpu/attention.h"
#include "backend/cpu/kv_cache.h"
#include "backend/cpu/moe.h"
#include "backend/cpu/recurrent_state.h"
#include "graph/ir.h"
#include "graph/planner.h"

namespace moeflux {

class CpuExecutor {
 public:
  CpuExecutor(ExpertSource& experts, ThreadPool& pool);

  // `arena` holds plan.arena_bytes; tokens and positions hold g.tokens
  // entries; kv and rs are the session's positional and fixed-size layer
  // states. Returns the output buffer (logits) inside the arena.
  const float* run(const Graph& g, const BufferPlan& plan, float* arena, const int32_t* tokens,
                   const int32_t* positions, KvCache& kv, RecurrentStates& rs);
  void set_observer(OpObserver obs) { observer_ = std::move(obs); }

 private:
  ThreadPool& pool_;
  cpu::MoeOp moe_;
  OpObserver observer_;
};

}  // namespace moeflux
