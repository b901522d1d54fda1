#include "backend/cuda/link_probe.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/check.h"

namespace moeflux {

using namespace cuda;

double cuda_h2d_bandwidth_gbs(uint64_t bytes) {
  void *host = nullptr, *dev = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  std::vector<float> ms;
  auto cleanup = [&] {
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFreeHost(host);
    cudaFree(dev);
  };
  try {
    check(cudaHostAlloc(&host, bytes, cudaHostAllocDefault), "allocating the link probe's host memory");
    check(cudaMalloc(&dev, bytes), "allocating the link probe's device memory");
    std::fill_n(static_cast<char*>(host), bytes, char(1));
    check(cudaEventCreate(&e0), "creating an event");
    check(cudaEventCreate(&e1), "creating an event");
    for (int i = 0; i < 6; ++i) {
      check(cudaEventRecord(e0), "recording an event");
      check(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice), "copying host to device");
      check(cudaEventRecord(e1), "recording an event");
      check(cudaEventSynchronize(e1), "waiting for the copy");
      float t = 0;
      check(cudaEventElapsedTime(&t, e0, e1), "timing the copy");
      if (i > 0) ms.push_back(t);  // the first copy warms up
    }
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
  std::sort(ms.begin(), ms.end());
  return double(bytes) / (double(ms[ms.size() / 2]) * 1e-3) / 1e9;
}

}  // namespace moeflux
