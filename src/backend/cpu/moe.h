// The MoE op on the CPU: the backend-neutral scheduler (moe/scheduler.h)
// driving CpuExpertCompute, which does the arithmetic with the thread pool.
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "moe/scheduler.h"
#include "quant/matmul.h"

namespace moeflux::cpu {

// Expert products as (expert, block of output rows) work items, one
// parallel loop per projection for every expert of a call: a decode step
// of k experts wakes the pool twice, not 3k times. Each input row is
// rounded for the integer kernels once per step.
class CpuExpertCompute final : public ExpertCompute {
 public:
  explicit CpuExpertCompute(ThreadPool& pool) : pool_(pool) {}
  void router_logits(const TensorRef& w, const TensorRef* bias, const float* x, int T,
                     std::vector<float>& out) override;
  void begin(const MoeParams& p, const MoePlan& plan, const float* x, int T, int D, float* out) override;
  void compute(const MoePlan& plan, size_t w0, const ExpertHold& hold, std::span<const uint32_t> which) override;
  void shared_expert(const MoeParams& p) override;
  void combine(const MoePlan& plan, size_t w0, size_t n) override;
  void finish(const MoeParams& p) override;

 private:
  // Rounds the rows [first, first + second) of each range of x (row stride
  // ld) into xq, on the pool when there are many.
  void prepare_rows(quant::PreparedActivations& xq, const float* x, size_t ld,
                    std::span<const std::pair<size_t, size_t>> ranges);

  ThreadPool& pool_;
  // This step: widths, input and output, whether experts keep f32 activations.
  size_t D_ = 0, F_ = 0, rows_ = 0;
  int T_ = 0;
  const float* x_ = nullptr;
  float* out_ = nullptr;
  bool f32_ = false;
  // Scratch reused across steps; sized to the largest seen, so a decode
  // step allocates nothing.
  std::vector<float> xe_, gate_, up_, down_, shared_gate_, shared_h_, shared_out_;
  // The routed rows' inputs rounded for the integer kernels: the layer input
  // (one row when T == 1, else the gathered rows of xe_), valid once
  // in_ready_, and the swiglu rows feeding the down projection.
  quant::PreparedActivations xq_in_, xq_act_;
  std::vector<std::pair<size_t, size_t>> ranges_;
  bool in_single_ = false, in_ready_ = false;
  // gpt-oss: this step's expert biases (data null: none) and activation.
  WeightView gate_up_bias_, down_bias_;
  bool clamped_ = false;
  float alpha_ = 0, limit_ = 0;
};

// The fused MoE block: out [T, D] = sum_j w_j * expert_j(x) (+ shared
// expert), experts from `source`, arithmetic on the pool.
class MoeOp {
 public:
  MoeOp(ExpertSource& source, ThreadPool& pool) : scheduler_(source), compute_(pool) {}
  void run(const MoeParams& p, const float* x, int T, int D, float* out) {
    scheduler_.run(p, x, T, D, out, compute_);
  }
  const Routing& last_routing() const { return scheduler_.last_routing(); }
  void set_expert_observer(MoeScheduler::ExpertObserver f) { scheduler_.set_expert_observer(std::move(f)); }

 private:
  MoeScheduler scheduler_;
  CpuExpertCompute compute_;
};

}  // namespace moeflux::cpu
