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

  // A batched decode step: row t of g is one token of its own session, whose
  // states are rows[t] (rows.size() == g.tokens). Every op but the stateful
  // ones (KV/latent append, attention, conv, delta rule) runs over all rows
  // at once, so the MoE op fetches each routed expert once for every
  // session that routes to it; the stateful ops run row by row on each
  // session's own states, giving each row the logits of its session's own
  // one-token step.
  struct RowStates {
    KvCache* kv;
    RecurrentStates* rs;
  };
  const float* run_rows(const Graph& g, const BufferPlan& plan, float* arena, const int32_t* tokens,
                        const int32_t* positions, std::span<const RowStates> rows);
  void set_observer(OpObserver obs) { observer_ = std::move(obs); }

 private:
  const float* run_impl(const Graph& g, const BufferPlan& plan, float* arena, const int32_t* tokens,
                        const int32_t* positions, std::span<const RowStates> rows);

  ThreadPool& pool_;
  cpu::MoeOp moe_;
  OpObserver observer_;
};

}  // namespace moeflux
