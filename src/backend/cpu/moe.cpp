#include "backend/cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "backend/cpu/ops.h"
#include "backend/cpu/simd_kernels.h"

namespace moeflux::cpu {

void route_into(const float* logits, int T, int E, int k, bool norm_topk, Routing& r, std::vector<float>& p,
                std::vector<int32_t>& idx) {
  r.k = k;
  r.experts.resize(size_t(T) * size_t(k));
  r.weights.resize(size_t(T) * size_t(k));
  p.resize(size_t(E));
  idx.resize(size_t(E));
  for (int t = 0; t < T; ++t) {
    std::copy(logits + size_t(t) * E, logits + size_t(t + 1) * E, p.begin());
    softmax_inplace(p.data(), size_t(E));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
      return p[size_t(a)] != p[size_t(b)] ? p[size_t(a)] > p[size_t(b)] : a < b;
    });
    float sum = 0;
    for (int j = 0; j < k; ++j) sum += p[size_t(idx[size_t(j)])];
    for (int j = 0; j < k; ++j) {
      r.experts[size_t(t) * k + j] = idx[size_t(j)];
      r.weights[size_t(t) * k + j] = norm_topk ? p[size_t(idx[size_t(j)])] / sum : p[size_t(idx[size_t(j)])];
    }
  }
}

Routing route(const float* logits, int T, int E, int k, bool norm_topk) {
  Routing r;
  std::vector<float> p;
  std::vector<int32_t> idx;
  route_into(logits, T, E, k, norm_topk, r, p, idx);
  return r;
}

namespace {

constexpr size_t kRowBlock = 16;

}  // namespace

void MoeOp::compute(int layer, const ExpertBatch* wb, const ExpertWeights* ew, std::span<const uint32_t> which) {
  if (which.empty()) return;
  const size_t D = size_t(s_.hidden), F = size_t(s_.expert_ffn);
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
  } job{xe_.data(), gate_.data(), up_.data(), down_.data(), which.data(), wb, ew, D, F, 0};
  // Work items are (expert, block of output rows), so one parallel loop
  // covers every expert of the call: a decode step of k experts wakes the
  // pool twice, not 3k times.
  job.blocks = (F + kRowBlock - 1) / kRowBlock;
  pool_.parallel_for(which.size() * job.blocks, 1, [j = &job](size_t b0, size_t b1) {
    for (size_t item = b0; item < b1; ++item) {
      const uint32_t i = j->which[item / j->blocks];
      const ExpertBatch& b = j->batches[i];
      const size_t r0 = (item % j->blocks) * kRowBlock, r1 = std::min(j->F, r0 + kRowBlock);
      const size_t n = b.count;
      const float* xb = j->xe + b.row0 * j->D;
      float* g = j->gate + b.row0 * j->F;
      float* u = j->up + b.row0 * j->F;
      matmul_weight(xb, j->D, n, j->ew[i].gate, r0, r1, g, j->F);
      matmul_weight(xb, j->D, n, j->ew[i].up, r0, r1, u, j->F);
      for (size_t t = 0; t < n; ++t) swiglu(g + t * j->F + r0, u + t * j->F + r0, g + t * j->F + r0, r1 - r0);
    }
  });
  job.blocks = (D + kRowBlock - 1) / kRowBlock;
  pool_.parallel_for(which.size() * job.blocks, 1, [j = &job](size_t b0, size_t b1) {
    for (size_t item = b0; item < b1; ++item) {
      const uint32_t i = j->which[item / j->blocks];
      const ExpertBatch& b = j->batches[i];
      const size_t r0 = (item % j->blocks) * kRowBlock, r1 = std::min(j->D, r0 + kRowBlock);
      matmul_weight(j->gate + b.row0 * j->F, j->F, b.count, j->ew[i].down, r0, r1, j->down + b.row0 * j->D, j->D);
    }
  });
  if (observer_)
    for (uint32_t i : which) observer_(layer, wb[i].expert);
}

void MoeOp::run(const LayerWeights& w, int layer, const float* x, int T, float* out) {
  const int D = s_.hidden, E = s_.experts, F = s_.expert_ffn, k = s_.top_k;
  // T tokens, E experts, D hidden, F expert ffn, k active
  router_logits_.resize(size_t(T) * E);
  linear(pool_, x, T, WeightView::of(*w.router), nullptr, router_logits_.data());  // [T, E]
  route_into(router_logits_.data(), T, E, k, s_.norm_topk, routing_, prob_scratch_, index_scratch_);

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
    prev_choice_.resize(size_t(s_.layers) * size_t(k));
    has_prev_.resize(size_t(s_.layers));
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
      if (w0 == 0 && predictors) prefetch_next(layer, x, T, predictors);
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
        if (first && s_.shared_ffn > 0) shared_expert(w, x, T);
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

  if (s_.shared_ffn > 0) {
    if (!shared_ready_) shared_expert(w, x, T);
    for (int t = 0; t < T; ++t)
      simd::axpy(shared_gate_[size_t(t)], &shared_out_[size_t(t) * D], out + size_t(t) * D, size_t(D));
  }
}

void MoeOp::shared_expert(const LayerWeights& w, const float* x, int T) {
  const int SF = s_.shared_ffn, D = s_.hidden;
  shared_h_.resize(size_t(T) * SF);
  shared_out_.resize(size_t(T) * std::max(SF, D));
  linear(pool_, x, T, WeightView::of(*w.shared.gate), nullptr, shared_h_.data());
  linear(pool_, x, T, WeightView::of(*w.shared.up), nullptr, shared_out_.data());
  swiglu(shared_h_.data(), shared_out_.data(), shared_h_.data(), size_t(T) * SF);
  linear(pool_, shared_h_.data(), T, WeightView::of(*w.shared.down), nullptr, shared_out_.data());
  shared_gate_.assign(size_t(T), 1.0f);
  if (w.shared_gate) {
    linear(pool_, x, T, WeightView::of(*w.shared_gate), nullptr, shared_gate_.data());
    for (float& g : shared_gate_) g = 1.0f / (1.0f + std::exp(-g));
  }
  shared_ready_ = true;
}

void MoeOp::prefetch_next(int layer, const float* x, int T, unsigned predictors) {
  int next = layer + 1;
  while (next < s_.layers && !s_.layer_is_moe[size_t(next)]) ++next;
  if (next >= s_.layers) return;
  const int E = s_.experts, k = s_.top_k;
  want_.clear();
  auto add = [&](int32_t e) {
    if (std::find(want_.begin(), want_.end(), e) == want_.end()) want_.push_back(e);
  };
  if (predictors & kPredictRouter) {
    next_logits_.resize(size_t(T) * E);
    linear(pool_, x, T, WeightView::of(*weights_.layers[size_t(next)].router), nullptr, next_logits_.data());
    route_into(next_logits_.data(), T, E, k, false, next_routing_, prob_scratch_, index_scratch_);
    for (int32_t e : next_routing_.experts) add(e);  // token by token, most likely first
  }
  if ((predictors & kPredictPrevious) && size_t(next) < has_prev_.size() && has_prev_[size_t(next)])
    for (int j = 0; j < k; ++j) add(prev_choice_[size_t(next) * k + j]);
  if (!want_.empty()) src_.prefetch(next, want_);
}

}  // namespace moeflux::cpu
