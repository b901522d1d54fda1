// Checking every CUDA call and kernel launch. A failure throws
// moeflux::Error naming what was being done (the op, its layer) and the CUDA
// runtime's message, so no error is lost to a later, unrelated call.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace moeflux::cuda {

[[noreturn]] void throw_cuda(cudaError_t e, const std::string& what);
[[noreturn]] void throw_cublas(cublasStatus_t s, const std::string& what);

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda(e, what);
}
inline void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw_cuda(e, what);
}
inline void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw_cublas(s, what);
}
// After a launch: a bad configuration is reported at once by
// cudaGetLastError; faults inside the kernel surface at the next synchronization.
inline void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_cuda(e, std::string("launching kernel ") + kernel);
}

}  // namespace moeflux::cuda
