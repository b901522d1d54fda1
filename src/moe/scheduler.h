// The MoE op in two halves. The scheduler (this file, backend-neutral)
// routes the tokens (moe/router.h), plans which rows each expert computes,
// holds the experts from the expert source a wave at a time, has the
// backend compute those already in a tier while the rest are read and each
// missing one as it lands, feeds the prefetch predictors and keeps the
// combine order fixed. The backend (ExpertCompute) only does arithmetic on
// bytes a tier holds: router products, expert products, the shared expert,
// and the weighted sums.
//
// Every expert writes its own rows of scratch, and the rows are summed into
// the output in the plan's fixed order after each wave, so the result does
// not depend on which reads land first or on the budget: bit-identical
// between a resident model and a streamed one.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "experts/expert_source.h"
#include "graph/ir.h"
#include "moe/router.h"

namespace moeflux {

// One expert's share of a step: its tokens (in token order) are
// plan.tokens[first, first + count) with weights plan.weights[...], and its
// rows of the gathered scratch start at row0 (== first).
struct ExpertBatch {
  int32_t expert;
  uint32_t first, count;
  size_t row0;
};

// Which rows each expert computes in one step. Batches are in order of the
// experts' first appearance in the routing.
struct MoePlan {
  Routing routing;
  std::vector<ExpertBatch> batches;
  std::vector<int32_t> tokens;  // [rows]: the token of each gathered row
  std::vector<float> weights;   // [rows]: its routing weight
  size_t rows = 0;
};

// What a backend does for the MoE op, called by the scheduler in this
// order per step: router_logits, begin, then per wave compute (as experts
// become ready; shared_expert once, right after the first compute of the
// step) and combine, then finish. x and out live where the backend keeps
// activations ([T, D], f32).
class ExpertCompute {
 public:
  virtual ~ExpertCompute() = default;
  // Router logits [T, rows of w] for x, with f32 activations (int8
  // rounding flips near-tied choices), into host memory for routing.
  virtual void router_logits(const TensorRef& w, const TensorRef* bias, const float* x, int T,
                             std::vector<float>& out) = 0;
  // A new step: gathers x's rows in plan order and clears out.
  virtual void begin(const MoeParams& p, const MoePlan& plan, const float* x, int T, int D, float* out) = 0;
  // Expert products for plan.batches[w0 + i], i in `which`, whose bytes
  // hold.weights[i] are ready in the tier hold.tier[i] says.
  virtual void compute(const MoePlan& plan, size_t w0, const ExpertHold& hold, std::span<const uint32_t> which) = 0;
  virtual void shared_expert(const MoeParams& p) = 0;
  // Adds the rows of batches [w0, w0 + n) times their weights into out,
  // in plan order.
  virtual void combine(const MoePlan& plan, size_t w0, size_t n) = 0;
  // After the last wave: the gated shared expert into out.
  virtual void finish(const MoeParams& p) = 0;
};

class MoeScheduler {
 public:
  explicit MoeScheduler(ExpertSource& source) : src_(source) {}
  void run(const MoeParams& p, const float* x, int T, int D, float* out, ExpertCompute& compute);
  const Routing& last_routing() const { return plan_.routing; }

  // Called after each routed expert's rows are computed, in compute order:
  // tests observe that resident experts run before a slow read lands and
  // that misses run in arrival order.
  using ExpertObserver = std::function<void(int layer, int32_t expert)>;
  void set_expert_observer(ExpertObserver f) { observer_ = std::move(f); }

 private:
  void make_plan(const MoeParams& p, int T);
  // Prefetch hints for the next MoE layer: its router applied to this
  // layer's input (pre-gating) and/or what the previous token chose there.
  void prefetch_next(const MoeParams& p, const float* x, int T, unsigned predictors, ExpertCompute& compute);

  ExpertSource& src_;
  ExpertObserver observer_;
  // Reused across steps, so a decode step allocates nothing once grown.
  MoePlan plan_;
  Routing next_routing_;
  RouterScratch router_scratch_;
  std::vector<float> router_logits_, next_logits_, correction_;
  std::vector<int32_t> batch_of_expert_, ids_, want_;
  std::vector<uint32_t> todo_;
  std::vector<uint8_t> computed_;
  ExpertHold hold_;
  // The last token's experts at each layer ([layer * k + j]), valid where
  // has_prev_[layer]: the "previous token" predictor.
  std::vector<int32_t> prev_choice_;
  std::vector<uint8_t> has_prev_;
};

}  // namespace moeflux
