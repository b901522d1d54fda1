#include "backend/cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "backend/cpu/ops.h"
#include "backend/cpu/simd_kernels.h"

namespace moeflux::cpu {

Routing route(const float* logits, int T, int E, int k, bool norm_topk) {
  Routing r;
  r.k = k;
  r.experts.resize(size_t(T) * size_t(k));
  r.weights.resize(size_t(T) * size_t(k));
  std::vector<float> p(static_cast<size_t>(E));
  std::vector<int32_t> idx(static_cast<size_t>(E));
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
  return r;
}

namespace {

// One expert's share of a step: the tokens routed to it, in token order.
struct ExpertBatch {
  int32_t expert;
  std::vector<int32_t> tokens;
  std::vector<float> weights;
  size_t row0;  // first row of this expert's tokens in the gathered scratch
};

}  // namespace

void MoeOp::run(const LayerWeights& w, int layer, const float* x, int T, float* out) {
  const int D = s_.hidden, E = s_.experts, F = s_.expert_ffn, k = s_.top_k;
  // T tokens, E experts, D hidden, F expert ffn, k active
  router_logits_.resize(size_t(T) * E);
  linear(pool_, x, T, WeightView::of(*w.router), nullptr, router_logits_.data());  // [T, E]
  routing_ = route(router_logits_.data(), T, E, k, s_.norm_topk);

  std::vector<ExpertBatch> batches;
  {
    std::vector<int> slot(size_t(E), -1);
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < k; ++j) {
        const int32_t e = routing_.experts[size_t(t) * k + j];
        if (slot[size_t(e)] < 0) {
          slot[size_t(e)] = int(batches.size());
          batches.push_back({e, {}, {}, 0});
        }
        auto& b = batches[size_t(slot[size_t(e)])];
        b.tokens.push_back(t);
        b.weights.push_back(routing_.weights[size_t(t) * k + j]);
      }
  }
  size_t rows = 0;
  for (auto& b : batches) {
    b.row0 = rows;
    rows += b.tokens.size();
  }
  if (src_.wants_prefetch()) prefetch_next(layer, x, T);

  xe_.resize(rows * D);
  gate_.resize(rows * F);
  up_.resize(rows * F);
  down_.resize(rows * D);
  for (auto& b : batches)
    for (size_t i = 0; i < b.tokens.size(); ++i)
      std::memcpy(&xe_[(b.row0 + i) * D], x + size_t(b.tokens[i]) * D, sizeof(float) * size_t(D));
  std::fill(out, out + size_t(T) * D, 0.0f);

  // Experts are held a wave at a time: as many as the source can hold at
  // once (all of them when memory-mapped). Waves keep the batch order, so
  // the sums below add in the same order whatever the budget: results are
  // bit-identical between a resident model and a small expert budget.
  const size_t wave = size_t(std::max(1, src_.max_acquire()));
  constexpr size_t kRowBlock = 16;
  const size_t f_blocks = (size_t(F) + kRowBlock - 1) / kRowBlock;
  const size_t d_blocks = (size_t(D) + kRowBlock - 1) / kRowBlock;
  for (size_t w0 = 0; w0 < batches.size(); w0 += wave) {
    const size_t nb = std::min(wave, batches.size() - w0);
    const ExpertBatch* wb = &batches[w0];
    std::vector<int32_t> ids(nb);
    for (size_t i = 0; i < nb; ++i) ids[i] = wb[i].expert;
    std::vector<ExpertWeights> ew(nb);
    src_.acquire(layer, ids, ew);
    // Work items are (expert, block of output rows), so one parallel loop
    // covers every expert of the wave: a decode step of k experts wakes the
    // pool twice, not 3k times.
    pool_.parallel_for(nb * f_blocks, 1, [&](size_t b0, size_t b1) {
      for (size_t item = b0; item < b1; ++item) {
        const ExpertBatch& b = wb[item / f_blocks];
        const ExpertWeights& ww = ew[item / f_blocks];
        const size_t r0 = (item % f_blocks) * kRowBlock, r1 = std::min(size_t(F), r0 + kRowBlock);
        const size_t n = b.tokens.size();
        const float* xb = &xe_[b.row0 * D];
        float* g = &gate_[b.row0 * F];
        float* u = &up_[b.row0 * F];
        matmul_weight(xb, size_t(D), n, ww.gate, r0, r1, g, size_t(F));
        matmul_weight(xb, size_t(D), n, ww.up, r0, r1, u, size_t(F));
        for (size_t t = 0; t < n; ++t) swiglu(g + t * F + r0, u + t * F + r0, g + t * F + r0, r1 - r0);
      }
    });
    pool_.parallel_for(nb * d_blocks, 1, [&](size_t b0, size_t b1) {
      for (size_t item = b0; item < b1; ++item) {
        const ExpertBatch& b = wb[item / d_blocks];
        const ExpertWeights& ww = ew[item / d_blocks];
        const size_t r0 = (item % d_blocks) * kRowBlock, r1 = std::min(size_t(D), r0 + kRowBlock);
        matmul_weight(&gate_[b.row0 * F], size_t(F), b.tokens.size(), ww.down, r0, r1, &down_[b.row0 * D], size_t(D));
      }
    });
    src_.release(layer, ids);
    for (size_t i = 0; i < nb; ++i)
      for (size_t j = 0; j < wb[i].tokens.size(); ++j)
        simd::axpy(wb[i].weights[j], &down_[(wb[i].row0 + j) * D], out + size_t(wb[i].tokens[j]) * D, size_t(D));
  }

  if (s_.shared_ffn > 0) {
    const int SF = s_.shared_ffn;
    shared_h_.resize(size_t(T) * SF);
    shared_out_.resize(size_t(T) * SF);
    linear(pool_, x, T, WeightView::of(*w.shared.gate), nullptr, shared_h_.data());
    linear(pool_, x, T, WeightView::of(*w.shared.up), nullptr, shared_out_.data());
    swiglu(shared_h_.data(), shared_out_.data(), shared_h_.data(), size_t(T) * SF);
    shared_out_.resize(size_t(T) * D);
    linear(pool_, shared_h_.data(), T, WeightView::of(*w.shared.down), nullptr, shared_out_.data());
    shared_gate_.assign(size_t(T), 1.0f);
    if (w.shared_gate) {
      linear(pool_, x, T, WeightView::of(*w.shared_gate), nullptr, shared_gate_.data());
      for (float& g : shared_gate_) g = 1.0f / (1.0f + std::exp(-g));
    }
    for (int t = 0; t < T; ++t)
      simd::axpy(shared_gate_[size_t(t)], &shared_out_[size_t(t) * D], out + size_t(t) * D, size_t(D));
  }
}

}  // namespace moeflux::cpu

namespace moeflux::cpu {

void MoeOp::prefetch_next(int layer, const float* x, int T) {
  int next = layer + 1;
  while (next < s_.layers && !s_.layer_is_moe[size_t(next)]) ++next;
  if (next >= s_.layers) return;
  const int E = s_.experts, k = s_.top_k;
  next_logits_.resize(size_t(T) * E);
  linear(pool_, x, T, WeightView::of(*weights_.layers[size_t(next)].router), nullptr, next_logits_.data());
  const Routing r = route(next_logits_.data(), T, E, k, false);
  std::vector<int32_t> want;
  for (int32_t e : r.experts)
    if (std::find(want.begin(), want.end(), e) == want.end()) want.push_back(e);
  src_.prefetch(next, want);
}

}  // namespace moeflux::cpu
