// Runs a planned graph on the CPU. Owns per-session scratch (the MoE op's),
// so one executor serves one session at a time.
#pragma once
#include <functional>

#include "backend/cpu/attention.h"
#include "backend/cpu/moe.h"
#include "graph/ir.h"
#include "graph/planner.h"
#include "runtime/kv_cache.h"

namespace moeflux {

// Called after each op with its output buffer [rows, width]: for per-layer
// comparison against a reference and for debugging.
using OpObserver = std::function<void(size_t op_index, const Op& op, const float* out, int rows, int width)>;

class CpuExecutor {
 public:
  CpuExecutor(const ModelSpec& spec, const ModelWeights& weights, ExpertSource& experts, ThreadPool& pool);

  // `arena` holds plan.arena_bytes; tokens and positions hold g.tokens
  // entries. Returns the output buffer (logits) inside the arena.
  const float* run(const Graph& g, const BufferPlan& plan, float* arena, const int32_t* tokens,
                   const int32_t* positions, KvCache& kv);
  void set_observer(OpObserver obs) { observer_ = std::move(obs); }

 private:
  const ModelSpec& spec_;
  const ModelWeights& weights_;
  ThreadPool& pool_;
  cpu::MoeOp moe_;
  OpObserver observer_;
};

}  // namespace moeflux
