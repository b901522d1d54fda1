#include "backend/cuda/check.h"

namespace moeflux::cuda {

void throw_cuda(cudaError_t e, const std::string& what) {
  // Errors of the device itself (a fault in a kernel) are not the user's
  // input: Internal, except allocation failures (Capacity).
  const ErrorKind kind = e == cudaErrorMemoryAllocation ? ErrorKind::Capacity : ErrorKind::Internal;
  throw Error(fmt::format("CUDA: {}: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e)), kind);
}

void throw_cublas(cublasStatus_t s, const std::string& what) {
  throw Error(fmt::format("cuBLAS: {}: {} (status {})", what, cublasGetStatusString(s), int(s)), ErrorKind::Internal);
}

}  // namespace moeflux::cuda
