// One session's keys and values, in fixed-size blocks of positions so that
// memory grows with the conversation and many sessions can share a pool
// later. Block b holds, for every layer, K and V rows for positions
// [b * block_tokens, (b + 1) * block_tokens).
#pragma once
#include <memory>
#include <vector>

namespace moeflux {

class KvCache {
 public:
  KvCache(int layers, int kv_dim, int max_positions, int block_tokens = 64);

  // Makes positions [0, n) writable; throws if n exceeds max_positions.
  void reserve(int n);
  float* key(int layer, int pos) { return row(layer, 0, pos); }
  float* value(int layer, int pos) { return row(layer, 1, pos); }
  const float* key(int layer, int pos) const { return const_cast<KvCache*>(this)->row(layer, 0, pos); }
  const float* value(int layer, int pos) const { return const_cast<KvCache*>(this)->row(layer, 1, pos); }

  int kv_dim() const { return kv_dim_; }
  int max_positions() const { return max_positions_; }
  size_t bytes() const { return blocks_.size() * block_floats() * sizeof(float); }
  void clear() { blocks_.clear(); }

 private:
  size_t block_floats() const { return size_t(layers_) * 2 * size_t(block_tokens_) * size_t(kv_dim_); }
  float* row(int layer, int kind, int pos) {
    float* b = blocks_[size_t(pos / block_tokens_)].get();
    return b + ((size_t(layer) * 2 + size_t(kind)) * size_t(block_tokens_) + size_t(pos % block_tokens_)) * size_t(kv_dim_);
  }
  int layers_, kv_dim_, max_positions_, block_tokens_;
  std::vector<std::unique_ptr<float[]>> blocks_;
};

}  // namespace moeflux
