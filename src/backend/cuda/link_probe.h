// The host -> device link as expert copies use it: page-locked host memory
// copied to the device with cudaMemcpyAsync, for the floors of the tiered
// benchmarks (the time the missed expert bytes need on PCIe).
#pragma once
#include <cstdint>

namespace moeflux {

// GB/s (1e9 bytes) of a `bytes` copy from page-locked host memory to the
// device, the median of several, timed with events.
double cuda_h2d_bandwidth_gbs(uint64_t bytes = uint64_t(256) << 20);

}  // namespace moeflux
