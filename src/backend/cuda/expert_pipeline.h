// The routed experts of one MoE layer when they do not all live in VRAM
// (the device tier, expert_vram.h), for one session:
//
//  1. the grouping the device routed (tiles of rows per expert) is read
//     back; this is the one host synchronisation per MoE layer of the
//     tiered path (full residency runs without it, as a CUDA graph);
//  2. experts found in VRAM slots are computed at once, as one grouped
//     launch over their tiles (slot ids in place of expert ids);
//  3. the misses are acquired from the expert source (the pinned host
//     tier, read from storage first where needed, in the order the reads
//     land); each is copied into a slot on this session's copy stream as
//     soon as its bytes are in host memory, and its tiles are queued on the
//     compute stream behind the copy's event, so compute of the hits and
//     of earlier misses overlaps the copies;
//  4. each expert writes its own rows of the routed products, and the
//     combine (moe_combine, unchanged) sums them in routing order: logits
//     do not depend on budgets, timing or which expert was a miss. The
//     grouped kernels compute a tile the same way whichever launch it is
//     in, so the tiered path is bit-identical to full residency.
//
// Prefill is the same path: a micro-batch routes first, each needed
// expert is fetched once and runs over all its rows (the tiled kernel),
// while the next ones are copied. A layer needing more experts than there
// are slots reuses a slot of this layer once its kernels are queued (the
// slot's used event orders the overwrite).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <vector>

#include "backend/cuda/dev_types.h"
#include "backend/cuda/expert_vram.h"
#include "experts/expert_source.h"

namespace moeflux::cuda {

// What the routed products of one MoE layer read and write (device
// pointers, as the resident path passes them to matmul_grouped).
struct TieredMoeLayer {
  int layer = 0, experts = 0, ffn = 0, hidden = 0;
  DType gate_dtype{}, up_dtype{}, down_dtype{};
  bool one_row_tiles = false;
  bool int8 = false;  // decode products may round x to int8, as the resident path's
  const MoeTile* tiles = nullptr;
  const int* ntiles = nullptr;
  int max_tiles = 0;
  const float* x = nullptr;
  const int* row_token = nullptr;
  float *h = nullptr, *h2 = nullptr, *down = nullptr;
};

class ExpertPipeline {
 public:
  ExpertPipeline(ExpertVram& vram, ExpertSource& source, cudaStream_t compute);
  ~ExpertPipeline();
  ExpertPipeline(const ExpertPipeline&) = delete;
  ExpertPipeline& operator=(const ExpertPipeline&) = delete;

  void run(const TieredMoeLayer& L);
  // After the step's final synchronisation: lets go of the host experts
  // still held and adds the copies' link time to the counters.
  void settle();
  // On an error: waits for the queued copies and kernels (ignoring their
  // errors, the step has failed anyway), then settles.
  void abort() noexcept;

 private:
  struct Group {
    int expert = 0;
    uint32_t key = 0;
    size_t slot = 0;
    std::vector<MoeTile> tiles;
  };
  // Queues the products of one subset of tiles (already in slot terms).
  void compute(const TieredMoeLayer& L, const std::vector<const Group*>& groups);
  void issue_miss(const TieredMoeLayer& L, Group& g, const ExpertWeights& w, const std::vector<uint32_t>& pending);
  cudaEvent_t timing_event();
  double harvest_timing();  // seconds of the timed copies since the last call (all complete)
  void ensure(int max_tiles, int experts);

  ExpertVram& vram_;
  ExpertSource& source_;
  cudaStream_t compute_ = nullptr, copy_ = nullptr;
  // Page-locked host buffers: the grouping read back, subsets of tiles
  // staged for upload (count then tiles), slot table entries staged.
  int* readback_ = nullptr;
  int* stage_ = nullptr;
  DevMat* stage_mats_ = nullptr;
  int* dev_subsets_ = nullptr;  // device mirror of stage_
  size_t stage_cap_ = 0, mats_cap_ = 0, readback_cap_ = 0;
  size_t stage_used_ = 0, mats_used_ = 0;
  std::vector<cudaEvent_t> timing_;  // pairs around each copy, since the last settle
  size_t timing_used_ = 0;
  ExpertHold hold_;
  std::vector<Group> groups_;
  std::map<int, std::vector<int32_t>> previous_;  // each layer's experts at the last step (prefetch)
};

}  // namespace moeflux::cuda
