// The device tier of routed experts (--expert-vram): fixed slots in one
// device allocation, each holding one expert in its stored format, with a
// device table of DevMat per slot (gate, up, down) that the grouped
// products index by slot instead of by expert id. Which expert a slot
// holds is decided by SlotCache (experts/vram_slots.h, shared with the
// tests that run without a GPU); this class owns the memory, the copies
// and the events that order them:
//   filled[s]  recorded on a copy stream after slot s was (re)filled; work
//              that reads the slot waits on it;
//   used[s]    recorded on a compute stream after the last kernels that
//              read slot s were queued; a copy that overwrites it waits on it.
// So no host synchronisation is needed to reuse a slot, and sessions on
// other streams see a consistent slot. Everything is under mutex().
//
// It also page-locks the host tier's arena (cudaHostRegister) so that
// copies from it are asynchronous DMA at the link's speed.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "backend/cuda/dev_types.h"
#include "experts/expert_source.h"
#include "experts/vram_slots.h"

namespace moeflux::cuda {

class ExpertVram {
 public:
  ExpertVram(const VramTierOptions& options, ExpertSource& source);
  ~ExpertVram();
  ExpertVram(const ExpertVram&) = delete;
  ExpertVram& operator=(const ExpertVram&) = delete;

  std::mutex& mutex() { return mu_; }
  SlotCache& cache() { return cache_; }
  uint32_t key(int layer, int expert) const { return uint32_t(layer) * uint32_t(experts_) + uint32_t(expert); }
  const DevMat* gate() const { return table_; }
  const DevMat* up() const { return table_ + slots_; }
  const DevMat* down() const { return table_ + 2 * slots_; }
  cudaEvent_t filled(size_t s) const { return filled_[s]; }
  cudaEvent_t used(size_t s) const { return used_[s]; }

  // Queues on `copy` the copy of expert w into slot s and the slot's table
  // entries (staged through stage[3], page-locked host memory that must
  // stay untouched until the copy ran), then records filled[s]. Returns
  // the bytes copied. Throws naming `what` when the expert does not fit a
  // slot, a copy cannot be queued, or a fault is injected
  // (MOEFLUX_CUDA_COPY_FAULT, see injected_copy_fault).
  uint64_t fill(size_t s, const ExpertWeights& w, DevMat* stage, cudaStream_t copy, const std::string& what);

  // Counters (under mutex()).
  ExpertStats& stats() { return stats_; }
  bool host_pinned() const { return !registered_.empty(); }

 private:
  void free_all();
  int experts_ = 0;
  size_t slots_ = 0;
  uint64_t slot_bytes_ = 0;
  uint8_t* base_ = nullptr;
  DevMat* table_ = nullptr;  // [3 * slots]: gate, up, down
  std::vector<cudaEvent_t> filled_, used_;
  std::vector<void*> registered_;
  SlotCache cache_;
  std::mutex mu_;
  ExpertStats stats_;
};

// Whether this expert copy is to fail, for tests of the error path:
// MOEFLUX_CUDA_COPY_FAULT=N fails the Nth copy counted from when the
// variable took its current value, "all" every copy while it is set.
bool injected_copy_fault();

}  // namespace moeflux::cuda
