#include "experts/vram_slots.h"

#include <algorithm>

#include "core/error.h"
#include "core/progress.h"

namespace moeflux {

uint64_t expert_vram_bytes(const ExpertExtents& x) {
  uint64_t n = 0;
  for (int m = 0; m < 3; ++m) {
    const Extent& e = x.matrix(m);
    n += vram_aligned(e.length);
    if (e.dtype == DType::MLX) n += vram_aligned(e.scales.length) + vram_aligned(e.biases.length);
  }
  return n;
}

uint64_t expert_vram_bytes(const ExpertWeights& w) {
  uint64_t n = 0;
  for (const WeightView* v : {&w.gate, &w.up, &w.down}) {
    n += vram_aligned(uint64_t(v->rows) * v->row_bytes());
    if (v->dtype == DType::MLX) {
      const uint64_t s = uint64_t(v->rows) * uint64_t(v->cols / std::max<int>(1, v->group_size)) * dtype_size(v->scale_dtype);
      n += 2 * vram_aligned(s);
    }
  }
  return n;
}

VramPlan plan_vram(const ExpertIndex& index, const ModelSpec& spec, uint64_t budget, size_t pinned) {
  VramPlan p;
  for (int l = 0; l < index.layers(); ++l) {
    if (!index.has_layer(l)) continue;
    for (int e = 0; e < index.experts(); ++e) p.slot_bytes = std::max(p.slot_bytes, expert_vram_bytes(index.at(l, e)));
    p.experts += size_t(index.experts());
  }
  p.all_bytes = p.slot_bytes * p.experts;
  p.min_budget = p.slot_bytes * (uint64_t(std::max(1, spec.top_k)) + pinned);
  p.all_resident = budget == 0 || (p.slot_bytes > 0 && budget / p.slot_bytes >= p.experts);
  p.slots = p.all_resident ? p.experts : size_t(p.slot_bytes ? budget / p.slot_bytes : 0);
  return p;
}

void check_vram_plan(const VramPlan& plan, uint64_t budget, int top_k, size_t pinned) {
  if (plan.all_resident || budget >= plan.min_budget) return;
  fail_as(ErrorKind::Capacity,
          "--expert-vram {} buys {} slot(s) of {}, below the minimum {} ({} slots): one token's top-{} experts of a "
          "layer{} must be on the GPU at once",
          human_bytes(budget), plan.slots, human_bytes(plan.slot_bytes), human_bytes(plan.min_budget),
          plan.min_budget / std::max<uint64_t>(1, plan.slot_bytes), top_k,
          pinned ? fmt::format(" plus the {} pinned", pinned) : std::string());
}

VramTierOptions vram_tier_options(const VramPlan& plan, const ModelSpec& spec, const std::string& policy,
                                  const std::vector<std::pair<int, int>>& pinned) {
  VramTierOptions o;
  o.enabled = !plan.all_resident;
  o.plan = plan;
  o.policy = policy;
  o.experts = spec.experts;
  o.layers = spec.layers;
  for (auto [l, e] : pinned) o.pinned.push_back(uint32_t(l) * uint32_t(spec.experts) + uint32_t(e));
  return o;
}

SlotCache::SlotCache(size_t slots, uint32_t keys, const std::string& policy, std::vector<uint32_t> pinned)
    : key_of_(slots, UINT32_MAX), policy_(make_cache_policy(policy, keys)) {
  free_.reserve(slots);
  for (size_t i = slots; i-- > 0;) free_.push_back(i);
  pinned_.insert(pinned.begin(), pinned.end());
}

size_t SlotCache::find(uint32_t key) {
  auto it = where_.find(key);
  if (it == where_.end()) return kNone;
  policy_->on_access(key);
  return it->second;
}

size_t SlotCache::take(const std::function<bool(uint32_t)>& busy, uint32_t& evicted) {
  evicted = UINT32_MAX;
  if (!free_.empty()) {
    const size_t s = free_.back();
    free_.pop_back();
    return s;
  }
  const uint32_t v = policy_->victim([&](uint32_t k) { return !pinned_.count(k) && !busy(k); });
  if (v == UINT32_MAX) return kNone;
  auto it = where_.find(v);
  if (it == where_.end()) fail_as(ErrorKind::Internal, "VRAM slots: the policy offered key {} that no slot holds", v);
  const size_t s = it->second;
  where_.erase(it);
  policy_->on_remove(v);
  key_of_[s] = UINT32_MAX;
  evicted = v;
  return s;
}

void SlotCache::commit(size_t slot, uint32_t key) {
  key_of_[slot] = key;
  where_[key] = slot;
  policy_->on_insert(key);
}

void SlotCache::abandon(size_t slot) {
  key_of_[slot] = UINT32_MAX;
  free_.push_back(slot);
}

}  // namespace moeflux
