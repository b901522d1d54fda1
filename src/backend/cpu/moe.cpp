#include "backend/cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>

#include "backend/cpu/ops.h"
#include "backend/cpu/simd_kernels.h"
#include "core/error.h"
#include "quant/matmul.h"

namespace moeflux::cpu {

namespace {

// Output rows per work item. Measured 2026-11-28, 2-core VM, olmoe 4-layer
// Q4_K_M, 6 alternated runs: 16 rows 55.3 tok/s decode, 32 rows 56.8
// (inside the noise, kept: half the calls; still 256 items per projection
// in decode for 2 threads to share).
constexpr size_t kRowBlock = 32;

// Rounding more elements than this goes to the pool (prefill); fewer, as in
// decode (8 rows of 1-2K), costs less than a round trip through it.
constexpr size_t kParallelRoundElems = size_t(1) << 15;

}  // namespace

void CpuExpertCompute::prepare_rows(quant::PreparedActivations& xq, const float* x, size_t ld,
                                    std::span<const std::pair<size_t, size_t>> ranges) {
  size_t elems = 0;
  for (const auto& r : ranges) elems += r.second * xq.cols();
  if (elems < kParallelRoundElems) {
    for (auto [r0, n] : ranges) xq.prepare_rows(x, ld, r0, r0 + n);
    return;
  }
  pool_.parallel_for(ranges.size(), 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) xq.prepare_rows(x, ld, ranges[i].first, ranges[i].first + ranges[i].second);
  });
}

void CpuExpertCompute::compute(const MoePlan& plan, size_t w0, const ExpertHold& hold,
                               std::span<const uint32_t> which) {
  if (which.empty()) return;
  for (uint32_t i : which)
    if (hold.tier[i] != ExpertTier::Host)
      fail_as(ErrorKind::Internal, "cpu MoE: expert {} of layer {} is held in a device tier", hold.experts[i],
              hold.layer);
  const ExpertBatch* wb = &plan.batches[w0];
  const ExpertWeights* ew = hold.weights.data();
  const size_t D = D_, F = F_;
  // The integer kernels round their input to int8 on every call unless it
  // comes prepared; calls here are per (expert, kRowBlock rows), so each input row
  // is rounded once up front: the layer input once per run() (in decode the
  // one token row serves every expert), the swiglu rows once per batch.
  const ExpertWeights& e0 = ew[which[0]];
  using Layout = std::optional<GgmlType>;
  const Layout gt = f32_ ? Layout{} : activation_layout(e0.gate), ut = f32_ ? Layout{} : activation_layout(e0.up),
               dt = f32_ ? Layout{} : activation_layout(e0.down);
  if (gt && !in_ready_) {
    xq_in_.reset(in_single_ ? 1 : rows_, D, *gt);
    if (in_single_)
      xq_in_.prepare_rows(x_, D, 0, 1);
    else {
      ranges_.clear();
      for (size_t r = 0; r < rows_; r += 64) ranges_.push_back({r, std::min<size_t>(64, rows_ - r)});
      prepare_rows(xq_in_, xe_.data(), D, ranges_);
    }
    in_ready_ = true;
  }
  // What the parallel loops need; their bodies capture only a pointer to
  // it, so the std::function the pool takes stays in its small buffer
  // instead of allocating on every call.
  struct Job {
    const float* xe;
    float *gate, *up, *down;
    const uint32_t* which;
    const ExpertBatch* batches;
    const ExpertWeights* ew;
    size_t D, F, blocks;
    bool single;
    // Prepared inputs and the weight types they serve (null: per call).
    const quant::PreparedActivations *xg, *xu, *xd;
    DType gdt, udt, ddt;
    // The product for rows without prepared activations: the kernel's own,
    // or with f32 activations.
    decltype(&matmul_weight) mm;
    const CpuExpertCompute* self;  // the step's biases and activation
  } job{xe_.data(), gate_.data(), up_.data(), down_.data(), which.data(), wb, ew, D, F, 0, in_single_,
        gt && in_ready_ ? &xq_in_ : nullptr, ut && in_ready_ && xq_in_.fits(*ut) ? &xq_in_ : nullptr, nullptr,
        e0.gate.dtype, e0.up.dtype, e0.down.dtype, f32_ ? &matmul_weight_f32 : &matmul_weight, this};
  // Work items are (expert, block of output rows), so one parallel loop
  // covers every expert of the call: a decode step of k experts wakes the
  // pool twice, not 3k times.
  job.blocks = (F + kRowBlock - 1) / kRowBlock;
  pool_.parallel_for(which.size() * job.blocks, 1, [j = &job](size_t b0, size_t b1) {
    for (size_t item = b0; item < b1; ++item) {
      const uint32_t i = j->which[item / j->blocks];
      const ExpertBatch& b = j->batches[i];
      const size_t r0 = (item % j->blocks) * kRowBlock, r1 = std::min(j->F, r0 + kRowBlock);
      const size_t n = b.count, t0 = j->single ? 0 : b.row0;
      const float* xb = j->xe + b.row0 * j->D;
      float* g = j->gate + b.row0 * j->F;
      float* u = j->up + b.row0 * j->F;
      const ExpertWeights& w = j->ew[i];
      if (j->xg && w.gate.dtype == j->gdt)
        matmul_prepared(*j->xg, t0, n, w.gate, r0, r1, g, j->F);
      else
        j->mm(xb, j->D, n, w.gate, r0, r1, g, j->F);
      if (j->xu && w.up.dtype == j->udt)
        matmul_prepared(*j->xu, t0, n, w.up, r0, r1, u, j->F);
      else
        j->mm(xb, j->D, n, w.up, r0, r1, u, j->F);
      if (j->self->gate_up_bias_.data) {  // gpt-oss: gate i at 2i, up i at 2i + 1 of the fused bias
        const WeightView& bias = j->self->gate_up_bias_;
        const int64_t at = int64_t(b.expert) * int64_t(2 * j->F);
        for (size_t r = r0; r < r1; ++r) {
          const float bg = load_weight_elem(bias, at + int64_t(2 * r)), bu = load_weight_elem(bias, at + int64_t(2 * r + 1));
          for (size_t t = 0; t < n; ++t) {
            g[t * j->F + r] += bg;
            u[t * j->F + r] += bu;
          }
        }
      }
      for (size_t t = 0; t < n; ++t) {
        float* gt = g + t * j->F + r0;
        if (j->self->clamped_)
          clamped_swiglu(gt, u + t * j->F + r0, gt, r1 - r0, j->self->alpha_, j->self->limit_);
        else
          swiglu(gt, u + t * j->F + r0, gt, r1 - r0);
      }
    }
  });
  if (dt) {
    xq_act_.reset(rows_, F, *dt);
    ranges_.clear();
    for (uint32_t i : which) ranges_.push_back({wb[i].row0, wb[i].count});
    prepare_rows(xq_act_, gate_.data(), F, ranges_);
    job.xd = &xq_act_;
  }
  job.blocks = (D + kRowBlock - 1) / kRowBlock;
  pool_.parallel_for(which.size() * job.blocks, 1, [j = &job](size_t b0, size_t b1) {
    for (size_t item = b0; item < b1; ++item) {
      const uint32_t i = j->which[item / j->blocks];
      const ExpertBatch& b = j->batches[i];
      const size_t r0 = (item % j->blocks) * kRowBlock, r1 = std::min(j->D, r0 + kRowBlock);
      const WeightView& w = j->ew[i].down;
      float* y = j->down + b.row0 * j->D;
      if (j->xd && w.dtype == j->ddt)
        matmul_prepared(*j->xd, b.row0, b.count, w, r0, r1, y, j->D);
      else
        j->mm(j->gate + b.row0 * j->F, j->F, b.count, w, r0, r1, y, j->D);
      if (j->self->down_bias_.data) {  // gpt-oss
        const int64_t at = int64_t(b.expert) * int64_t(j->D);
        for (size_t r = r0; r < r1; ++r) {
          const float bias = load_weight_elem(j->self->down_bias_, at + int64_t(r));
          for (size_t t = 0; t < b.count; ++t) y[t * j->D + r] += bias;
        }
      }
    }
  });
}

void CpuExpertCompute::router_logits(const TensorRef& weight, const TensorRef* bias, const float* x, int T,
                                     std::vector<float>& out) {
  const WeightView w = WeightView::of(weight), b = bias ? WeightView::of(*bias) : WeightView{};
  out.resize(size_t(T) * size_t(w.rows));
  linear(pool_, x, T, w, bias ? &b : nullptr, out.data(), Activations::F32);  // [T, E]
}

void CpuExpertCompute::begin(const MoeParams& p, const MoePlan& plan, const float* x, int T, int D, float* out) {
  const size_t rows = plan.rows, F = size_t(p.expert_ffn);
  D_ = size_t(D);
  F_ = F;
  T_ = T;
  x_ = x;
  out_ = out;
  f32_ = p.f32_activations;
  gate_up_bias_ = p.expert_gate_up_bias ? WeightView::of(*p.expert_gate_up_bias) : WeightView{};
  down_bias_ = p.expert_down_bias ? WeightView::of(*p.expert_down_bias) : WeightView{};
  if (gate_up_bias_.data && (gate_up_bias_.rows != p.experts || gate_up_bias_.cols != 2 * int64_t(F)))
    fail_as(ErrorKind::Internal, "cpu MoE: expert gate/up bias is [{}, {}], not [{}, {}]", gate_up_bias_.rows,
            gate_up_bias_.cols, p.experts, 2 * F);
  if (down_bias_.data && (down_bias_.rows != p.experts || down_bias_.cols != D))
    fail_as(ErrorKind::Internal, "cpu MoE: expert down bias is [{}, {}], not [{}, {}]", down_bias_.rows,
            down_bias_.cols, p.experts, D);
  clamped_ = p.clamped_swiglu;
  alpha_ = p.swiglu_alpha;
  limit_ = p.swiglu_limit;
  xe_.resize(rows * D_);
  gate_.resize(rows * F);
  up_.resize(rows * F);
  down_.resize(rows * D_);
  for (const auto& b : plan.batches)
    for (size_t i = 0; i < b.count; ++i)
      std::memcpy(&xe_[(b.row0 + i) * D_], x + size_t(plan.tokens[b.first + i]) * D_, sizeof(float) * D_);
  std::fill(out, out + size_t(T) * D_, 0.0f);
  // compute() rounds the expert input once, on its first call of this step.
  rows_ = rows;
  in_single_ = T == 1;
  in_ready_ = false;
}

void CpuExpertCompute::combine(const MoePlan& plan, size_t w0, size_t n) {
  const ExpertBatch* wb = &plan.batches[w0];
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < wb[i].count; ++j)
      simd::axpy(plan.weights[wb[i].first + j], &down_[(wb[i].row0 + j) * D_],
                 out_ + size_t(plan.tokens[wb[i].first + j]) * D_, D_);
}

void CpuExpertCompute::shared_expert(const MoeParams& p) {
  const int SF = p.shared_ffn, D = int(D_), T = T_;
  const float* x = x_;
  shared_h_.resize(size_t(T) * SF);
  shared_out_.resize(size_t(T) * std::max(SF, D));
  const Activations act = f32_ ? Activations::F32 : Activations::Kernel;
  linear(pool_, x, T, WeightView::of(*p.shared_gate), nullptr, shared_h_.data(), act);
  linear(pool_, x, T, WeightView::of(*p.shared_up), nullptr, shared_out_.data(), act);
  swiglu(shared_h_.data(), shared_out_.data(), shared_h_.data(), size_t(T) * SF);
  linear(pool_, shared_h_.data(), T, WeightView::of(*p.shared_down), nullptr, shared_out_.data(), act);
  shared_gate_.assign(size_t(T), 1.0f);
  if (p.shared_expert_gate) {  // a one-row gate: f32 always, as the router
    linear(pool_, x, T, WeightView::of(*p.shared_expert_gate), nullptr, shared_gate_.data(), Activations::F32);
    for (float& g : shared_gate_) g = 1.0f / (1.0f + std::exp(-g));
  }
}

void CpuExpertCompute::finish(const MoeParams& p) {
  if (p.shared_ffn == 0) return;
  for (int t = 0; t < T_; ++t)
    simd::axpy(shared_gate_[size_t(t)], &shared_out_[size_t(t) * D_], out_ + size_t(t) * D_, D_);
}

}  // namespace moeflux::cpu
