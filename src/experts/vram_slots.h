// The device tier's bookkeeping, backend-neutral so that it is tested
// without a GPU: how many fixed slots a VRAM budget buys and the smallest
// budget that works (plan_vram), and which expert each slot holds, with
// eviction by the same cache policies as the host tier and pinned experts
// that never leave (SlotCache). A GPU backend owns the memory behind the
// slots and does the copies; this file only decides.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "experts/cache_policy.h"
#include "experts/expert_index.h"
#include "experts/expert_source.h"
#include "model/model_spec.h"

namespace moeflux {

// Device bytes of one expert in a slot: each matrix (and an MLX matrix's
// scales and biases) starts on a 256-byte boundary, as the kernels' loads want.
inline constexpr uint64_t kVramAlign = 256;
inline uint64_t vram_aligned(uint64_t n) { return (n + kVramAlign - 1) & ~(kVramAlign - 1); }
uint64_t expert_vram_bytes(const ExpertExtents& x);
// The same from the views a source hands over (what a slot copy moves).
uint64_t expert_vram_bytes(const ExpertWeights& w);

struct VramPlan {
  uint64_t slot_bytes = 0;   // the largest expert, aligned per matrix
  size_t slots = 0;          // what the budget buys (capped at the experts there are)
  size_t experts = 0;        // routed experts of the model (MoE layers x experts)
  uint64_t all_bytes = 0;    // every expert in slots of slot_bytes
  uint64_t min_budget = 0;   // one token's top-k of one layer plus the pinned experts
  bool all_resident = false; // the budget holds every expert: no tiering
};
// budget 0 means "every expert resident" (the whole-residency path).
VramPlan plan_vram(const ExpertIndex& index, const ModelSpec& spec, uint64_t budget, size_t pinned);
// The same refusal everywhere (inspect, engine load): a budget below
// plan.min_budget, naming the minimum and why.
void check_vram_plan(const VramPlan& plan, uint64_t budget, int top_k, size_t pinned);

// What a GPU backend needs to run the device tier: off, or a plan with
// the policy, the pinned experts and the key space.
struct VramTierOptions {
  bool enabled = false;  // false: every expert resident (or no GPU)
  VramPlan plan;
  std::string policy = "lru";
  std::vector<uint32_t> pinned;  // layer * experts + expert
  int experts = 0;               // routed experts per MoE layer
  int layers = 0;
};
VramTierOptions vram_tier_options(const VramPlan& plan, const ModelSpec& spec, const std::string& policy,
                                  const std::vector<std::pair<int, int>>& pinned);

// Which (layer, expert) key each of `slots` slots holds. Keys are
// layer * experts + expert, as in the host tier. Not thread-safe: the
// owner serializes.
class SlotCache {
 public:
  SlotCache(size_t slots, uint32_t keys, const std::string& policy, std::vector<uint32_t> pinned);

  static constexpr size_t kNone = SIZE_MAX;
  // The slot holding `key` (counted as an access), or kNone.
  size_t find(uint32_t key);
  // A slot for `key`: a free one, else the policy's victim among resident,
  // unpinned keys for which busy(key) is false. kNone if there is none.
  // evicted is set to the key the slot held (UINT32_MAX if it was free).
  // The slot holds nothing until commit(); give it back with abandon().
  size_t take(const std::function<bool(uint32_t)>& busy, uint32_t& evicted);
  void commit(size_t slot, uint32_t key);
  void abandon(size_t slot);
  bool holds(uint32_t key) const { return where_.count(key) != 0; }  // not counted as an access
  uint32_t key_at(size_t slot) const { return key_of_[slot]; }
  size_t slots() const { return key_of_.size(); }
  size_t resident() const { return where_.size(); }
  bool pinned(uint32_t key) const { return pinned_.count(key) != 0; }

 private:
  std::vector<uint32_t> key_of_;  // UINT32_MAX: free or being filled
  std::vector<size_t> free_;
  std::unordered_map<uint32_t, size_t> where_;
  std::unordered_set<uint32_t> pinned_;
  std::unique_ptr<CachePolicy> policy_;
};

}  // namespace moeflux
