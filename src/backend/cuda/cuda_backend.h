// The CUDA backend: the whole model resident on one NVIDIA GPU. Weights
// (dense and every routed expert) are uploaded once, on the first step that
// uses them; KV pages, activations (one device arena laid out by the
// BufferPlan) and the MoE op's scratch live on the device, and a step runs
// as kernels on one stream per session with no host round trip.
//
// This header is plain C++ (the engine includes it from .cpp files); the
// implementation is in the .cu files beside it, built when CMake finds nvcc.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"

namespace moeflux {

// Throws a clear error when no usable GPU is present.
std::unique_ptr<Backend> make_cuda_backend(const BackendContext& ctx);
// Why the CUDA backend cannot run here ("" when a GPU is usable): no
// device, a driver older than the runtime, and so on, in the CUDA runtime's words.
std::string cuda_unavailable_reason();

// The GPU the backend runs on, for benchmarks and inspect.
struct CudaDeviceInfo {
  std::string name;
  int multiprocessors = 0;
  uint64_t total_bytes = 0, free_bytes = 0;
};
CudaDeviceInfo cuda_device_info();
// Device memory bandwidth as a large device-to-device copy moves it: bytes
// read plus bytes written per second, in GB/s (the median of several copies
// of `bytes`, timed with events).
double cuda_copy_bandwidth_gbs(uint64_t bytes = uint64_t(2) << 30);
// Device memory a backend made by make_cuda_backend holds for weights
// (dense, routed experts), 0 before the first step uploaded them.
struct CudaWeightBytes {
  uint64_t dense = 0, experts = 0;
};
CudaWeightBytes cuda_weight_bytes(const Backend& backend);

}  // namespace moeflux
