// One session's positional layer states on the device: keys and values of
// every attention layer (an MLA layer's latent + RoPE row as its key, no
// value) in pages of `block_tokens` positions (each page holds those
// positions for every layer, as the CPU cache does), allocated as the
// conversation grows and charged to the engine's StateBudget. The kernels
// find a position through a device table of page pointers. Recurrent
// layers take no room here (recurrent_state.h).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "backend/state_budget.h"
#include "graph/ir.h"

namespace moeflux::cuda {

// What a kernel needs to address state `state`'s rows.
struct KvView {
  float* const* pages;  // device table of page pointers
  int block_tokens;
  int64_t key_off, value_off;  // floats into a page
  int key_width, value_width;
};

class DevKvCache {
 public:
  DevKvCache(const std::vector<StateDesc>& states, int max_positions, StateBudget& budget, int block_tokens = 256);
  ~DevKvCache();
  DevKvCache(const DevKvCache&) = delete;
  DevKvCache& operator=(const DevKvCache&) = delete;

  // Makes positions [0, n) writable (allocates pages, updates the device
  // table); throws a capacity error past max_positions or the budget.
  void reserve(int n);
  KvView view(uint32_t state) const;
  size_t states() const { return kw_.size(); }
  uint64_t bytes() const { return uint64_t(pages_.size()) * page_bytes(); }
  void clear();
  // Saved sessions: positions [0, n) of every state, state by state, keys
  // then values of each position, f32 (the CPU cache's layout, so the bytes
  // mean the same on either backend). copy_in checks the size and reserves
  // first, so a refusal changes nothing.
  void copy_out(int n, std::vector<uint8_t>& out) const;
  void copy_in(int n, std::span<const uint8_t> in);

 private:
  uint64_t page_bytes() const { return page_floats_ * sizeof(float); }
  std::vector<int> kw_, vw_;
  std::vector<int64_t> key_off_, value_off_;
  uint64_t page_floats_ = 0;
  int max_positions_, block_tokens_;
  StateBudget& budget_;
  std::vector<float*> pages_;
  float** table_ = nullptr;  // device, one entry per possible page
};

}  // namespace moeflux::cuda
