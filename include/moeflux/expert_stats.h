// Expert-store counters, part of the public API (bench --json, run/chat).
#pragma once
#include <cstdint>

namespace moeflux {

// Counters of an expert source since load; all zero for sources that hold
// everything in memory.
struct ExpertStats {
  uint64_t hits = 0;            // experts found resident when acquired
  uint64_t misses = 0;          // experts read on demand
  uint64_t prefetch_issued = 0; // experts read ahead of need
  uint64_t prefetch_used = 0;   // of those, acquired before eviction
  uint64_t prefetch_hits = 0;   // acquires served by a prefetch (done or in flight)
  uint64_t bytes_read = 0;      // from storage, alignment padding included
  double read_wait_s = 0;       // time spent waiting for reads that compute did not hide (stall)
  uint64_t evictions = 0;
  // The device tier (--expert-vram on CUDA); all zero without one.
  uint64_t vram_slots = 0;      // experts the device tier holds at once
  uint64_t vram_hits = 0;       // routed experts found in VRAM
  uint64_t vram_misses = 0;     // routed experts copied host -> device
  uint64_t vram_evictions = 0;
  uint64_t bytes_h2d = 0;       // expert bytes copied host -> device
  double h2d_s = 0;             // time the copy engine spent on them (link time)
  double vram_hit_rate() const {
    return vram_hits + vram_misses ? double(vram_hits) / double(vram_hits + vram_misses) : 0;
  }
  double h2d_gbs() const { return h2d_s > 0 ? double(bytes_h2d) / h2d_s / 1e9 : 0; }
  double prefetch_precision() const { return prefetch_issued ? double(prefetch_used) / double(prefetch_issued) : 0; }
  // Of the experts that were not resident from earlier use, the share a
  // prefetch had brought in.
  double prefetch_recall() const {
    return prefetch_hits + misses ? double(prefetch_hits) / double(prefetch_hits + misses) : 0;
  }
  double hit_rate() const {
    const uint64_t n = hits + misses + prefetch_hits;
    return n ? double(hits + prefetch_hits) / double(n) : 0;
  }
};

}  // namespace moeflux
