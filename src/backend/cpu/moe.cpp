#include "backend/cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>

#include "backend/cpu/ops.h"
#include "backend/cpu/simd_kernels.h"
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

void MoeOp::prepare_rows(quant::PreparedActivations& xq, const float* x, size_t ld,
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

void MoeOp::compute(int layer, const ExpertBatch* wb, const ExpertWeights* ew, std::span<const uint32_t> which) {
  if (which.empty()) return;
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
      xq_in_.prepare_rows(in_x_, D, 0, 1);
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
  } job{xe_.data(), gate_.data(), up_.data(), down_.data(), which.data(), wb, ew, D, F, 0, in_single_,
        gt && in_ready_ ? &xq_in_ : nullptr, ut && in_ready_ && xq_in_.fits(*ut) ? &xq_in_ : nullptr, nullptr,
        e0.gate.dtype, e0.up.dtype, e0.down.dtype, f32_ ? &matmul_weight_f32 : &matmul_weight};
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
      for (size_t t = 0; t < n; ++t) swiglu(g + t * j->F + r0, u + t * j->F + r0, g + t * j->F + r0, r1 - r0);
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
    }
  });
  if (observer_)
    for (uint32_t i : which) observer_(layer, wb[i].expert);
}

void MoeOp::router_logits(const TensorRef* weight, const TensorRef* bias, const float* x, int T,
                          std::vector<float>& out) {
  const WeightView w = WeightView::of(*weight), b = bias ? WeightView::of(*bias) : WeightView{};
  out.resize(size_t(T) * size_t(w.rows));
  // f32 activations always: int8-rounded inputs flip near-tied router
  // choices (an mlx-lm checkpoint: a different top-1 at 15% of positions).
  linear(pool_, x, T, w, bias ? &b : nullptr, out.data(), Activations::F32);  // [T, E]
}

void MoeOp::run(const MoeParams& p, const float* x, int T, int D, float* out) {
  const int E = p.experts, F = p.expert_ffn, k = p.top_k, layer = p.layer;
  D_ = size_t(D);
  F_ = size_t(F);
  f32_ = p.f32_activations;
  // T tokens, E experts, D hidden, F expert ffn, k active
  router_logits(p.router_weight, p.router_bias, x, T, router_logits_);
  correction_.clear();
  if (p.correction_bias)
    for (int e = 0; e < E; ++e) correction_.push_back(load_weight_elem(WeightView::of(*p.correction_bias), e));
  route(p.router, router_logits_.data(), T, E, k, correction_, routing_, router_scratch_);

  // Batches in order of first appearance, each with its tokens in token
  // order: counted first, then filled, into flat arrays.
  batches_.clear();
  batch_of_expert_.assign(size_t(E), -1);
  for (size_t i = 0; i < routing_.experts.size(); ++i) {
    const int32_t e = routing_.experts[i];
    int32_t& bi = batch_of_expert_[size_t(e)];
    if (bi < 0) {
      bi = int32_t(batches_.size());
      batches_.push_back({e, 0, 0, 0});
    }
    batches_[size_t(bi)].count++;
  }
  size_t rows = 0;
  for (auto& b : batches_) {
    b.first = uint32_t(rows);
    b.row0 = rows;
    rows += b.count;
    b.count = 0;  // refilled below
  }
  tokens_.resize(rows);
  weights_of_.resize(rows);
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < k; ++j) {
      ExpertBatch& b = batches_[size_t(batch_of_expert_[size_t(routing_.experts[size_t(t) * k + j])])];
      tokens_[b.first + b.count] = t;
      weights_of_[b.first + b.count] = routing_.weights[size_t(t) * k + j];
      b.count++;
    }

  // Remember the last token's choice before predicting from the previous
  // one: prefetch_next reads the next layer's entry, not this one.
  const unsigned predictors = src_.prefetch_predictors();
  if (predictors & kPredictPrevious) {
    if (has_prev_.size() <= size_t(layer)) {
      prev_choice_.resize(size_t(layer + 1) * size_t(k));
      has_prev_.resize(size_t(layer + 1));
    }
    std::copy_n(&routing_.experts[size_t(T - 1) * k], k, &prev_choice_[size_t(layer) * k]);
    has_prev_[size_t(layer)] = 1;
  }

  xe_.resize(rows * D);
  gate_.resize(rows * F);
  up_.resize(rows * F);
  down_.resize(rows * D);
  for (const auto& b : batches_)
    for (size_t i = 0; i < b.count; ++i)
      std::memcpy(&xe_[(b.row0 + i) * D], x + size_t(tokens_[b.first + i]) * D, sizeof(float) * size_t(D));
  std::fill(out, out + size_t(T) * D, 0.0f);
  shared_ready_ = false;
  // compute() rounds the expert input once, on its first call of this run.
  rows_ = rows;
  in_x_ = x;
  in_single_ = T == 1;
  in_ready_ = false;

  // Experts are held a wave at a time: as many as the source can hold at
  // once (all of them when memory-mapped). Waves keep the batch order, so
  // the sums below add in the same order whatever the budget: results are
  // bit-identical between a resident model and a small expert budget.
  const size_t wave = size_t(std::max(1, src_.max_acquire()));
  for (size_t w0 = 0; w0 < batches_.size(); w0 += wave) {
    const size_t nb = std::min(wave, batches_.size() - w0);
    const ExpertBatch* wb = &batches_[w0];
    ids_.resize(nb);
    for (size_t i = 0; i < nb; ++i) ids_[i] = wb[i].expert;
    // Starts the reads of the missing experts and returns at once.
    src_.acquire_async(layer, ids_, hold_);
    try {
      // Predictions go after the demand reads were submitted, so they never
      // queue ahead of them (the store also holds them back until this
      // layer's reads have landed).
      if (w0 == 0 && predictors) prefetch_next(p, x, T, predictors);
      computed_.assign(nb, 0);
      // What is resident first, while the misses are read; then the shared
      // expert (it needs no read); then each miss as its read lands.
      bool first = true;
      for (;;) {
        todo_.clear();
        for (uint32_t i = 0; i < nb; ++i)
          if (hold_.ready[i] && !computed_[i]) {
            todo_.push_back(i);
            computed_[i] = 1;
          }
        compute(layer, wb, hold_.weights.data(), todo_);
        if (first && p.shared_ffn > 0) shared_expert(p, x, T);
        first = false;
        if (hold_.waiting == 0) break;
        src_.wait_any(hold_);
      }
    } catch (...) {
      src_.release_hold(hold_);  // the engine stays usable: nothing stays held
      throw;
    }
    src_.release_hold(hold_);
    for (size_t i = 0; i < nb; ++i)
      for (size_t j = 0; j < wb[i].count; ++j)
        simd::axpy(weights_of_[wb[i].first + j], &down_[(wb[i].row0 + j) * D],
                   out + size_t(tokens_[wb[i].first + j]) * D, size_t(D));
  }

  if (p.shared_ffn > 0) {
    if (!shared_ready_) shared_expert(p, x, T);
    for (int t = 0; t < T; ++t)
      simd::axpy(shared_gate_[size_t(t)], &shared_out_[size_t(t) * D], out + size_t(t) * D, size_t(D));
  }
}

void MoeOp::shared_expert(const MoeParams& p, const float* x, int T) {
  const int SF = p.shared_ffn, D = int(D_);
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
  shared_ready_ = true;
}

void MoeOp::prefetch_next(const MoeParams& p, const float* x, int T, unsigned predictors) {
  const int next = p.next_layer;
  if (next < 0) return;
  const int E = p.experts, k = p.top_k;
  want_.clear();
  auto add = [&](int32_t e) {
    if (std::find(want_.begin(), want_.end(), e) == want_.end()) want_.push_back(e);
  };
  if (predictors & kPredictRouter) {
    // The next layer's choice as its router would make it from this
    // layer's input (its correction bias, if any, is left out: a guess).
    router_logits(p.next_router_weight, p.next_router_bias, x, T, next_logits_);
    RouterSpec guess = p.router;
    guess.renormalize = false;
    route(guess, next_logits_.data(), T, E, k, {}, next_routing_, router_scratch_);
    for (int32_t e : next_routing_.experts) add(e);  // token by token, most likely first
  }
  if ((predictors & kPredictPrevious) && size_t(next) < has_prev_.size() && has_prev_[size_t(next)])
    for (int j = 0; j < k; ++j) add(prev_choice_[size_t(next) * k + j]);
  if (!want_.empty()) src_.prefetch(next, want_);
}

}  // namespace moeflux::cpu
