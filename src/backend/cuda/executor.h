// Runs a planned graph on the device for one session: one stream, the
// activation arena laid out by the BufferPlan, and the scratch of the MoE
// and attention ops, grown to the largest step seen so that a decode step
// allocates nothing. Every scalar an op needs is on the op; an op this
// backend does not know is refused by name before anything runs.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/device_weights.h"
#include "backend/cuda/kv_cache.h"

namespace moeflux::cuda {

// A device allocation that grows (contents are not kept).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* need(size_t bytes, const char* what);
  template <class T>
  T* need(size_t n, const char* what) {
    return static_cast<T*>(need(n * sizeof(T), what));
  }
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
  size_t size_ = 0;
};

class CudaExecutor {
 public:
  explicit CudaExecutor(DeviceWeights& weights);
  ~CudaExecutor();
  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  void run(const Graph& g, const BufferPlan& plan, std::span<const int32_t> tokens, std::span<const int32_t> positions,
           DevKvCache& kv);
  void read_output(const Graph& g, float* dst, size_t n);
  void set_observer(OpObserver obs) { observer_ = std::move(obs); }

 private:
  float* buf(const Graph& g, const BufferPlan& plan, uint32_t id) const;
  void run_op(const Graph& g, const BufferPlan& plan, const Op& op, DevKvCache& kv);
  void linear(const OpLinear& o, const float* in, int rows, float* out);
  void moe(const MoeParams& p, const float* x, int T, int D, float* out);
  void sync(const char* what);

  DeviceWeights& weights_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  OpObserver observer_;
  bool sync_each_op_ = false;  // MOEFLUX_CUDA_SYNC=1: find the op a kernel fault comes from
  const float* output_ = nullptr;
  int T_ = 0;
  int max_position_ = 0;
  DeviceBuffer arena_, tokens_, positions_, attn_partial_;
  // MoE scratch.
  DeviceBuffer logits_, ids_, route_w_, counts_, row_token_, row_of_, tiles_, ntiles_, h_, h2_, down_, sh_, sh2_,
      shared_out_, shared_gate_;
  std::vector<float> host_out_;
};

}  // namespace moeflux::cuda
