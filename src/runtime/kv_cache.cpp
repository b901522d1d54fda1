#include "runtime/kv_cache.h"

#include "core/error.h"

namespace moeflux {

KvCache::KvCache(int layers, int kv_dim, int max_positions, int block_tokens)
    : layers_(layers), kv_dim_(kv_dim), max_positions_(max_positions), block_tokens_(block_tokens) {}

void KvCache::reserve(int n) {
  if (n > max_positions_)
    fail("context of {} tokens exceeds the session's limit of {} positions", n, max_positions_);
  while (int(blocks_.size()) * block_tokens_ < n) blocks_.push_back(std::make_unique<float[]>(block_floats()));
}

}  // namespace moeflux
