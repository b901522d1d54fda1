#include "experts/cache_policy.h"

#include <algorithm>
#include <list>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace moeflux {

namespace {

class Lru final : public CachePolicy {
 public:
  void on_insert(uint32_t k) override { pos_[k] = order_.insert(order_.end(), k); }
  void on_access(uint32_t k) override {
    auto it = pos_.find(k);
    if (it != pos_.end()) order_.splice(order_.end(), order_, it->second);
  }
  void on_remove(uint32_t k) override {
    auto it = pos_.find(k);
    if (it == pos_.end()) return;
    order_.erase(it->second);
    pos_.erase(it);
  }
  uint32_t victim(const std::function<bool(uint32_t)>& ok) override {
    for (uint32_t k : order_)
      if (ok(k)) return k;
    return UINT32_MAX;
  }
  const char* name() const override { return "lru"; }

 private:
  std::list<uint32_t> order_;  // least recent first
  std::unordered_map<uint32_t, std::list<uint32_t>::iterator> pos_;
};

class LfuAging final : public CachePolicy {
 public:
  explicit LfuAging(uint32_t keys) : count_(keys, 0), last_(keys, 0), aging_period_(std::max<uint32_t>(keys, 64)) {}
  void on_insert(uint32_t k) override {
    resident_.insert(k);
    on_access(k);
  }
  void on_access(uint32_t k) override {
    count_[k] += 1;
    last_[k] = ++clock_;
    if (++since_aging_ >= aging_period_) {  // halve every count: old popularity fades
      for (auto& c : count_) c >>= 1;
      since_aging_ = 0;
    }
  }
  void on_remove(uint32_t k) override { resident_.erase(k); }
  uint32_t victim(const std::function<bool(uint32_t)>& ok) override {
    uint32_t best = UINT32_MAX;
    for (uint32_t k : resident_) {
      if (!ok(k)) continue;
      // Fewest uses first; among equals, least recent.
      if (best == UINT32_MAX || count_[k] < count_[best] || (count_[k] == count_[best] && last_[k] < last_[best]))
        best = k;
    }
    return best;
  }
  const char* name() const override { return "lfu"; }

 private:
  std::vector<uint32_t> count_;
  std::vector<uint64_t> last_;
  std::set<uint32_t> resident_;
  uint64_t clock_ = 0;
  uint32_t since_aging_ = 0, aging_period_;
};

}  // namespace

std::unique_ptr<CachePolicy> make_cache_policy(const std::string& name, uint32_t keys) {
  if (name == "lru") return std::make_unique<Lru>();
  if (name == "lfu") return std::make_unique<LfuAging>(keys);
  fail("unknown cache policy '{}' (lru, lfu)", name);
}

}  // namespace moeflux
