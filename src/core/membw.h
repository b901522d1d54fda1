// Measured multi-thread DRAM read bandwidth: the host-memory floor's
// denominator. Reads a buffer much larger than any cache with every thread,
// once as a plain stream and once with a software prefetch 4 KiB ahead (as
// the quantized kernels issue): on the 16-core Xeon hosts a core's plain
// stream is latency bound and the kernels outran it by up to 35%, so the
// floor is the higher of the two.
#pragma once
#include <cstddef>

#include "core/thread_pool.h"

namespace moeflux {

struct BandwidthResult {
  double gb_per_s;           // the floor: max of the two below, 1e9 bytes per second
  size_t bytes;              // buffer size read per repetition
  double plain_gb_per_s;     // best repetition of the plain read
  double prefetch_gb_per_s;  // best repetition of the read with software prefetch
};

BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30, int reps = 5);

}  // namespace moeflux
