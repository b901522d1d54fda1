// Runs a planned graph on the device for one session: one stream, the
// activation arena laid out by the BufferPlan, and the scratch of the MoE
// and attention ops, grown to the largest step seen so that a decode step
// allocates nothing. Every scalar an op needs is on the op; an op this
// backend does not know is refused by name before anything runs.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include <memory>

#include "backend/cuda/device_weights.h"
#include "backend/cuda/expert_pipeline.h"
#include "backend/cuda/kv_cache.h"
#include "backend/cuda/recurrent_state.h"

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
  // Bumped by every reallocation of any buffer: captured graphs hold raw
  // device pointers and are retired when it moves.
  static uint64_t epoch();

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
  // The session's recurrent layer blocks (Gated DeltaNet), if it has any.
  void set_recurrent_states(DevRecurrentStates* rs) { recurrent_ = rs; }

 private:
  float* buf(const Graph& g, const BufferPlan& plan, uint32_t id) const;
  void run_op(const Graph& g, const BufferPlan& plan, const Op& op, DevKvCache& kv);
  void linear(const OpLinear& o, const float* in, int rows, float* out);
  // The ops of MLA and Gated DeltaNet (executor_arch.cpp).
  void run_arch_op(const Graph& g, const BufferPlan& plan, const Op& op, DevKvCache& kv);
  void moe(const MoeParams& p, const float* x, int T, int D, float* out);
  unsigned* route_done();
  unsigned* attn_done(int heads);
  int attn_done_n_ = 0;
  void sync(const char* what);
  // Decode steps replay a captured CUDA graph of the whole step (one
  // launch instead of hundreds). A graph is keyed by the step's graph and
  // plan and by the attention split counts; a step whose key was run
  // eagerly just before is captured. Any device buffer growth since the
  // capture retires it.
  uint64_t step_key(const Graph& g, const BufferPlan& plan) const;
  bool run_captured(const Graph& g, const BufferPlan& plan, uint64_t key, DevKvCache& kv);
  void run_ops(const Graph& g, const BufferPlan& plan, DevKvCache& kv);
  // Runs ops[i, i + n) as one fused launch where they match a known
  // sequence (fused_decode.h) and returns n, else 0.
  size_t run_fused(const Graph& g, const BufferPlan& plan, size_t i, DevKvCache& kv);
  struct Captured {
    uint64_t key = 0, epoch = 0;
    cudaGraphExec_t exec = nullptr;
  };
  std::vector<Captured> captured_;
  uint64_t last_eager_key_ = 0;
  bool graphs_ = true;  // MOEFLUX_CUDA_GRAPH=0 turns capture off

  DeviceWeights& weights_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  OpObserver observer_;
  bool sync_each_op_ = false;
  // Decode GEMVs round x to int8 for integer-coded formats (gemv_q8.h)
  // unless the op asks for f32 activations; MOEFLUX_CUDA_INT8=0 turns it off.
  bool int8_ = true;
  // Decode fusions (routing + grouping, MoE down + combine, ...);
  // MOEFLUX_CUDA_FUSE=0 runs the unfused kernels, for comparison.
  bool fuse_ = true;  // MOEFLUX_CUDA_SYNC=1: find the op a kernel fault comes from
  const float* output_ = nullptr;
  int T_ = 0;
  int max_position_ = 0;
  DeviceBuffer arena_, tokens_, positions_, attn_partial_;
  // MoE scratch.
  DeviceBuffer logits_, ids_, route_w_, row_token_, row_of_, tiles_, ntiles_, h_, h2_, down_, sh_, sh2_,
      shared_out_, shared_gate_, route_done_, attn_done_;
  std::vector<float> host_out_;
  DevRecurrentStates* recurrent_ = nullptr;
  DeviceBuffer mla_q_lat_, mla_o_lat_;  // MLA scratch: the absorbed query and output latents
  // The tiered MoE path (--expert-vram), made on first use.
  std::unique_ptr<ExpertPipeline> pipeline_;
  void run_step(const Graph& g, const BufferPlan& plan, std::span<const int32_t> tokens,
                std::span<const int32_t> positions, DevKvCache& kv);
};

}  // namespace moeflux::cuda
