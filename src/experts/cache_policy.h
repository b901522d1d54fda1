// Which resident expert to evict when a slot is needed. Keys are
// layer * experts + expert. Pinned keys and keys in use are never offered.
//   lru: least recently used.
//   lfu: least frequently used, with counts halved every `aging_period`
//        accesses so that experts popular long ago fade (frequency with aging).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace moeflux {

class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  virtual void on_insert(uint32_t key) = 0;
  virtual void on_access(uint32_t key) = 0;
  virtual void on_remove(uint32_t key) = 0;
  // The key to evict among resident ones for which `evictable` is true;
  // UINT32_MAX if none.
  virtual uint32_t victim(const std::function<bool(uint32_t)>& evictable) = 0;
  virtual const char* name() const = 0;
};

std::unique_ptr<CachePolicy> make_cache_policy(const std::string& name, uint32_t keys);  // "lru" | "lfu"

}  // namespace moeflux
