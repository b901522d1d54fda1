// Measured multi-thread DRAM read bandwidth: the host-memory floor's
// denominator. Reads a buffer much larger than any cache with every thread.
#pragma once
#include <cstddef>

#include "core/thread_pool.h"

namespace moeflux {

struct BandwidthResult {
  double gb_per_s;    // best of the repetitions, 1e9 bytes per second
  size_t bytes;       // buffer size read per repetition
};

BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30, int reps = 5);

}  // namespace moeflux
