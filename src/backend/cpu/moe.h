#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "experts/expert_source.h"
#include "model/model_spec.h"
#include "model/weights.h"

namespace moeflux::cpu {

// Routing of T tokens: for token t, experts[t * k + j] with weight
// weights[t * k + j], j < k, in descending probability.
struct Routing {
  int k = 0;
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

// Softmax over the router logits [T, E], top-k (ties to the lower id), then
// renormalised to sum to 1 when norm_topk.
Routing route(const float* router_logits, int T, int E, int k, bool norm_topk);

// The fused MoE block: out [T, D] = sum_j w_j * expert_j(x) (+ shared expert).
// Experts are fetched once per step for all tokens routed to them, and each
// runs as one matrix product over its tokens.
class MoeOp {
 public:
  MoeOp(const ModelSpec& spec, const ModelWeights& weights, ExpertSource& source, ThreadPool& pool)
      : s_(spec), weights_(weights), src_(source), pool_(pool) {}
  void run(const LayerWeights& w, int layer, const float* x, int T, float* out);
  const Routing& last_routing() const { return routing_; }

 private:
  // Pre-gating: the next MoE layer's router applied to this layer's input
  // predicts its experts; the source starts reading them now so the reads
  // overlap this layer's compute.
  void prefetch_next(int layer, const float* x, int T);

  const ModelSpec& s_;
  const ModelWeights& weights_;
  ExpertSource& src_;
  ThreadPool& pool_;
  // Scratch reused across calls; sized to the largest step seen.
  Routing routing_;
  std::vector<float> next_logits_, router_logits_, xe_, gate_, up_, down_, shared_gate_, shared_h_, shared_out_;
};

}  // namespace moeflux::cpu
