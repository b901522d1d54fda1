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

}  // namespace moeflux
