#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "experts/expert_source.h"
#include "graph/ir.h"
#include "moe/router.h"
#include "quant/matmul.h"

namespace moeflux::cpu {

// The fused MoE block: out [T, D] = sum_j w_j * expert_j(x) (+ shared expert).
// Experts are fetched once per step for all tokens routed to them, and each
// runs as one matrix product over its tokens.
//
// With a streaming source, the experts already in memory are computed while
// the missing ones are read, and each missing one as soon as its read lands.
// Every expert writes its own rows of scratch and the rows are summed into
// `out` in the routing's fixed order afterwards, so the result does not
// depend on which reads land first: bit-identical to a resident model.
class MoeOp {
 public:
  MoeOp(ExpertSource& source, ThreadPool& pool) : src_(source), pool_(pool) {}
  // x, out: [T, D].
  void run(const MoeParams& p, const float* x, int T, int D, float* out);
  const Routing& last_routing() const { return routing_; }

  // Called on the calling thread after each routed expert's output rows are
  // computed, in compute order. Lets tests observe that resident experts
  // run before a slow read lands and that misses run in arrival order.
  using ExpertObserver = std::function<void(int layer, int32_t expert)>;
  void set_expert_observer(ExpertObserver f) { observer_ = std::move(f); }

 private:
  // One expert's share of a step: its tokens (in token order) are
  // tokens_[first, first + count) with weights in weights_of_, and its rows
  // of the gathered scratch start at row0.
  struct ExpertBatch {
    int32_t expert;
    uint32_t first, count;
    size_t row0;
  };
  // Prefetch hints for the next MoE layer: its router applied to this
  // layer's input (pre-gating) and/or what the previous token chose there.
  void prefetch_next(const MoeParams& p, const float* x, int T, unsigned predictors);
  // Gate/up/swiglu then down for the batches wb[i], i in `which`, whose
  // weights are ew[i].
  void compute(int layer, const ExpertBatch* wb, const ExpertWeights* ew, std::span<const uint32_t> which);
  void router_logits(const TensorRef* weight, const TensorRef* bias, const float* x, int T, std::vector<float>& out);
  // Rounds the rows [first, first + second) of each range of x (row stride
  // ld) into xq, on the pool when there are many.
  void prepare_rows(quant::PreparedActivations& xq, const float* x, size_t ld,
                    std::span<const std::pair<size_t, size_t>> ranges);
  void shared_expert(const MoeParams& p, const float* x, int T);

  ExpertSource& src_;
  ThreadPool& pool_;
  ExpertObserver observer_;
  // Scratch reused across calls; sized to the largest step seen, so a
  // decode step allocates nothing.
  Routing routing_, next_routing_;
  RouterScratch router_scratch_;
  std::vector<float> correction_;
  size_t D_ = 0, F_ = 0;  // this run's hidden and expert ffn widths
  bool f32_ = false;      // this run's experts keep f32 activations
  std::vector<ExpertBatch> batches_;
  std::vector<int32_t> batch_of_expert_, tokens_, ids_, want_;
  std::vector<float> weights_of_;
  std::vector<uint32_t> todo_;
  std::vector<uint8_t> computed_;
  ExpertHold hold_;
  // The last token's experts at each layer ([layer * k + j]), valid where
  // has_prev_[layer]: the "previous token" predictor.
  std::vector<int32_t> prev_choice_;
  std::vector<uint8_t> has_prev_;
  std::vector<float> next_logits_, router_logits_, xe_, gate_, up_, down_, shared_gate_, shared_h_, shared_out_;
  bool shared_ready_ = false;
  // The routed rows' inputs rounded for the integer kernels: the layer input
  // (one row when T == 1, else the gathered rows of xe_), valid once
  // in_ready_, and the swiglu rows feeding the down projection.
  quant::PreparedActivations xq_in_, xq_act_;
  std::vector<std::pair<size_t, size_t>> ranges_;
  const float* in_x_ = nullptr;
  size_t rows_ = 0;
  bool in_single_ = false, in_ready_ = false;
};

}  // namespace moeflux::cpu
