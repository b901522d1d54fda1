#include "backend/cuda/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "backend/cuda/check.h"
#include "core/progress.h"

namespace moeflux::cuda {

DevKvCache::DevKvCache(const std::vector<StateDesc>& states, int max_positions, StateBudget& budget, int block_tokens)
    : max_positions_(max_positions), block_tokens_(block_tokens), budget_(budget) {
  for (const StateDesc& s : states) {
    // Recurrent layers keep no rows per position (DevRecurrentStates holds
    // their fixed blocks); a latent state is rows of key_width, no value.
    kw_.push_back(s.positional() ? s.key_width : 0);
    vw_.push_back(s.positional() ? s.value_width : 0);
    key_off_.push_back(int64_t(page_floats_));
    page_floats_ += uint64_t(block_tokens) * uint64_t(kw_.back());
    value_off_.push_back(int64_t(page_floats_));
    page_floats_ += uint64_t(block_tokens) * uint64_t(vw_.back());
  }
  const size_t max_pages = size_t(std::max(1, (max_positions + block_tokens - 1) / block_tokens));
  check(cudaMalloc(&table_, max_pages * sizeof(float*)), "allocating the KV page table");
}

DevKvCache::~DevKvCache() {
  clear();
  cudaFree(table_);
}

void DevKvCache::reserve(int n) {
  if (n > max_positions_)
    fail_as(ErrorKind::Capacity, "context of {} tokens exceeds the session's limit of {} positions", n,
            max_positions_);
  if (page_floats_ == 0) return;  // only recurrent layers: nothing per position
  const size_t before = pages_.size();
  while (int(pages_.size()) * block_tokens_ < n) {
    if (!budget_.try_take(page_bytes()))
      fail_as(ErrorKind::Capacity,
              "the session state budget of {} is used up ({} in use by all sessions); {} more are needed for "
              "positions up to {}: raise the budget or end other sessions",
              human_bytes(budget_.limit()), human_bytes(budget_.used()), human_bytes(page_bytes()), n);
    float* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, page_bytes());
    if (e != cudaSuccess) {
      budget_.give_back(page_bytes());
      cudaGetLastError();  // clear the sticky allocation error
      fail_as(ErrorKind::Capacity, "CUDA: allocating {} of device memory for KV positions up to {}: {}",
              human_bytes(page_bytes()), n, cudaGetErrorString(e));
    }
    pages_.push_back(p);
  }
  if (pages_.size() != before)
    check(cudaMemcpy(table_ + before, pages_.data() + before, (pages_.size() - before) * sizeof(float*),
                     cudaMemcpyHostToDevice),
          "updating the KV page table");
}

KvView DevKvCache::view(uint32_t s) const {
  return KvView{table_, block_tokens_, key_off_[s], value_off_[s], kw_[s], vw_[s]};
}

void DevKvCache::clear() {
  // Pages may still be read by queued kernels: wait for the device first.
  if (!pages_.empty()) cudaDeviceSynchronize();
  for (float* p : pages_) cudaFree(p);
  budget_.give_back(pages_.size() * page_bytes());
  pages_.clear();
}

void DevKvCache::copy_out(int n, std::vector<uint8_t>& out) const {
  if (n < 0 || (page_floats_ > 0 && n > int(pages_.size()) * block_tokens_))
    fail_as(ErrorKind::Internal, "DevKvCache::copy_out: {} positions, {} held", n, int(pages_.size()) * block_tokens_);
  // The session's kernels run on a non-blocking stream: wait for them.
  check(cudaDeviceSynchronize(), "waiting for the device before copying session state out");
  std::vector<float> keys, values;
  for (size_t s = 0; s < kw_.size(); ++s)
    for (int p0 = 0; kw_[s] + vw_[s] > 0 && p0 < n; p0 += block_tokens_) {  // recurrent states: no rows
      const int rows = std::min(block_tokens_, n - p0);
      const float* page = pages_[size_t(p0 / block_tokens_)];
      keys.resize(size_t(rows) * size_t(kw_[s]));
      values.resize(size_t(rows) * size_t(vw_[s]));
      if (!keys.empty())
        check(cudaMemcpy(keys.data(), page + key_off_[s], keys.size() * sizeof(float), cudaMemcpyDeviceToHost),
              "copying keys of a saved session out");
      if (!values.empty())
        check(cudaMemcpy(values.data(), page + value_off_[s], values.size() * sizeof(float), cudaMemcpyDeviceToHost),
              "copying values of a saved session out");
      for (int r = 0; r < rows; ++r) {
        const auto* k = reinterpret_cast<const uint8_t*>(keys.data() + size_t(r) * size_t(kw_[s]));
        const auto* v = reinterpret_cast<const uint8_t*>(values.data() + size_t(r) * size_t(vw_[s]));
        out.insert(out.end(), k, k + size_t(kw_[s]) * sizeof(float));
        out.insert(out.end(), v, v + size_t(vw_[s]) * sizeof(float));
      }
    }
}

void DevKvCache::copy_in(int n, std::span<const uint8_t> in) {
  size_t need = 0;
  for (size_t s = 0; s < kw_.size(); ++s) need += size_t(n) * size_t(kw_[s] + vw_[s]) * sizeof(float);
  if (n < 0 || in.size() != need)
    fail("session state of {} bytes for {} positions; this model's layers need {}", in.size(), n, need);
  reserve(n);  // before anything is overwritten: a budget refusal leaves the cache as it was
  check(cudaDeviceSynchronize(), "waiting for the device before copying session state in");
  const uint8_t* src = in.data();
  std::vector<float> keys, values;
  for (size_t s = 0; s < kw_.size(); ++s)
    for (int p0 = 0; kw_[s] + vw_[s] > 0 && p0 < n; p0 += block_tokens_) {  // recurrent states: no rows
      const int rows = std::min(block_tokens_, n - p0);
      keys.resize(size_t(rows) * size_t(kw_[s]));
      values.resize(size_t(rows) * size_t(vw_[s]));
      for (int r = 0; r < rows; ++r) {
        std::memcpy(keys.data() + size_t(r) * size_t(kw_[s]), src, size_t(kw_[s]) * sizeof(float));
        src += size_t(kw_[s]) * sizeof(float);
        std::memcpy(values.data() + size_t(r) * size_t(vw_[s]), src, size_t(vw_[s]) * sizeof(float));
        src += size_t(vw_[s]) * sizeof(float);
      }
      float* page = pages_[size_t(p0 / block_tokens_)];
      if (!keys.empty())
        check(cudaMemcpy(page + key_off_[s], keys.data(), keys.size() * sizeof(float), cudaMemcpyHostToDevice),
              "copying keys of a saved session in");
      if (!values.empty())
        check(cudaMemcpy(page + value_off_[s], values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice),
              "copying values of a saved session in");
    }
}

}  // namespace moeflux::cuda
