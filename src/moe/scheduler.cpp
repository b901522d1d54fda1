#include "moe/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace moeflux {

void MoeScheduler::make_plan(const MoeParams& p, int T) {
  const int E = p.experts, k = p.top_k;
  MoePlan& pl = plan_;
  // Batches in order of first appearance, each with its tokens in token
  // order: counted first, then filled, into flat arrays.
  pl.batches.clear();
  batch_of_expert_.assign(size_t(E), -1);
  for (size_t i = 0; i < pl.routing.experts.size(); ++i) {
    const int32_t e = pl.routing.experts[i];
    int32_t& bi = batch_of_expert_[size_t(e)];
    if (bi < 0) {
      bi = int32_t(pl.batches.size());
      pl.batches.push_back({e, 0, 0, 0});
    }
    pl.batches[size_t(bi)].count++;
  }
  size_t rows = 0;
  for (auto& b : pl.batches) {
    b.first = uint32_t(rows);
    b.row0 = rows;
    rows += b.count;
    b.count = 0;  // refilled below
  }
  pl.rows = rows;
  pl.tokens.resize(rows);
  pl.weights.resize(rows);
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < k; ++j) {
      ExpertBatch& b = pl.batches[size_t(batch_of_expert_[size_t(pl.routing.experts[size_t(t) * k + j])])];
      pl.tokens[b.first + b.count] = t;
      pl.weights[b.first + b.count] = pl.routing.weights[size_t(t) * k + j];
      b.count++;
    }
}

void MoeScheduler::run(const MoeParams& p, const float* x, int T, int D, float* out, ExpertCompute& compute) {
  const int E = p.experts, k = p.top_k, layer = p.layer;
  compute.router_logits(*p.router_weight, p.router_bias, x, T, router_logits_);
  correction_.clear();
  if (p.correction_bias) {
    const WeightView bias = WeightView::of(*p.correction_bias);
    for (int e = 0; e < E; ++e) correction_.push_back(load_weight_elem(bias, e));
  }
  route(p.router, router_logits_.data(), T, E, k, correction_, plan_.routing, router_scratch_);
  make_plan(p, T);

  // Remember the last token's choice before predicting from the previous
  // one: prefetch_next reads the next layer's entry, not this one.
  const unsigned predictors = src_.prefetch_predictors();
  if (predictors & kPredictPrevious) {
    if (has_prev_.size() <= size_t(layer)) {
      prev_choice_.resize(size_t(layer + 1) * size_t(k));
      has_prev_.resize(size_t(layer + 1));
    }
    std::copy_n(&plan_.routing.experts[size_t(T - 1) * k], k, &prev_choice_[size_t(layer) * k]);
    has_prev_[size_t(layer)] = 1;
  }

  compute.begin(p, plan_, x, T, D, out);
  bool shared_done = p.shared_ffn == 0;
  // Experts are held a wave at a time: as many as the source can hold at
  // once (all of them when memory-mapped). Waves keep the batch order, so
  // the sums add in the same order whatever the budget: results are
  // bit-identical between a resident model and a small expert budget.
  const size_t wave = size_t(std::max(1, src_.max_acquire()));
  for (size_t w0 = 0; w0 < plan_.batches.size(); w0 += wave) {
    const size_t nb = std::min(wave, plan_.batches.size() - w0);
    ids_.resize(nb);
    for (size_t i = 0; i < nb; ++i) ids_[i] = plan_.batches[w0 + i].expert;
    // Starts the reads of the missing experts and returns at once.
    src_.acquire_async(layer, ids_, hold_);
    try {
      // Predictions go after the demand reads were submitted, so they never
      // queue ahead of them (the store also holds them back until this
      // layer's reads have landed).
      if (w0 == 0 && predictors) prefetch_next(p, x, T, predictors, compute);
      computed_.assign(nb, 0);
      // What is resident first, while the misses are read; then the shared
      // expert (it needs no read); then each miss as its read lands.
      for (;;) {
        todo_.clear();
        for (uint32_t i = 0; i < nb; ++i)
          if (hold_.ready[i] && !computed_[i]) {
            todo_.push_back(i);
            computed_[i] = 1;
          }
        if (!todo_.empty()) {
          compute.compute(plan_, w0, hold_, todo_);
          if (observer_)
            for (uint32_t i : todo_) observer_(layer, plan_.batches[w0 + i].expert);
        }
        if (!shared_done) {
          compute.shared_expert(p);
          shared_done = true;
        }
        if (hold_.waiting == 0) break;
        src_.wait_any(hold_);
      }
    } catch (...) {
      src_.release_hold(hold_);  // the engine stays usable: nothing stays held
      throw;
    }
    src_.release_hold(hold_);
    compute.combine(plan_, w0, nb);
  }
  if (!shared_done) compute.shared_expert(p);
  compute.finish(p);
}

void MoeScheduler::prefetch_next(const MoeParams& p, const float* x, int T, unsigned predictors,
                                 ExpertCompute& compute) {
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
    compute.router_logits(*p.next_router_weight, p.next_router_bias, x, T, next_logits_);
    RouterSpec guess = p.router;
    guess.renormalize = false;
    route(guess, next_logits_.data(), T, E, k, {}, next_routing_, router_scratch_);
    for (int32_t e : next_routing_.experts) add(e);  // token by token, most likely first
  }
  if ((predictors & kPredictPrevious) && size_t(next) < has_prev_.size() && has_prev_[size_t(next)])
    for (int j = 0; j < k; ++j) add(prev_choice_[size_t(next) * k + j]);
  if (!want_.empty()) src_.prefetch(next, want_);
}

}  // namespace moeflux
