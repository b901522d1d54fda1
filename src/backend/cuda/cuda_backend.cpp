#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <mutex>
#include <cstdlib>
#include <vector>

#include "backend/cuda/attention.h"
#include "backend/cuda/check.h"
#include "backend/cuda/device_weights.h"
#include "backend/cuda/executor.h"
#include "backend/cuda/kv_cache.h"
#include "backend/cuda/recurrent_state.h"

namespace moeflux {

using namespace cuda;

namespace {

class CudaBackend;

class CudaSession final : public BackendSession {
 public:
  CudaSession(DeviceWeights& weights, const BackendContext& ctx, const std::vector<StateDesc>& states,
              int max_positions)
      : kv_(states, max_positions, ctx.state_budget), rs_(states, ctx.state_budget), exec_(weights) {
    exec_.set_recurrent_states(&rs_);
  }

  void run(const Graph& g, const BufferPlan& plan, std::span<const int32_t> tokens,
           std::span<const int32_t> positions) override {
    if (tokens.size() != size_t(g.tokens) || positions.size() != size_t(g.tokens))
      fail_as(ErrorKind::Internal, "cuda backend: {} tokens and {} positions for a graph of {} tokens", tokens.size(),
              positions.size(), g.tokens);
    if (g.states.size() != kv_.states())
      fail_as(ErrorKind::Internal, "cuda backend: graph has {} layer states, the session {}", g.states.size(),
              kv_.states());
    output_ready_ = false;
    exec_.run(g, plan, tokens, positions, kv_);
    output_ready_ = true;
  }

  void read_output(const Graph& g, std::span<float> dst) override {
    const BufferDesc& d = g.buffers[g.output.index];
    const size_t n = size_t(d.rows) * size_t(d.width);
    if (!output_ready_ || dst.size() < n)
      fail_as(ErrorKind::Internal, "cuda backend: no output to read, or {} < {}", dst.size(), n);
    exec_.read_output(g, dst.data(), n);
  }

  void clear_states() override {
    kv_.clear();
    rs_.clear();
  }
  uint64_t state_bytes() const override { return kv_.bytes() + rs_.bytes(); }
  // Checkpoints of recurrent layers: device-to-device copies of the blocks.
  std::shared_ptr<const StateSnapshot> snapshot_states() const override { return rs_.snapshot(this); }
  void restore_states(const StateSnapshot& snapshot) override { rs_.restore(snapshot, this); }
  void set_observer(OpObserver observer) override { exec_.set_observer(std::move(observer)); }
  // Saved sessions and the server's prefix cache: the same bytes as the CPU
  // backend's (the positional states, then the recurrent layers' blocks).
  void export_states(int positions, std::vector<uint8_t>& out) const override {
    kv_.copy_out(positions, out);
    rs_.copy_out(out);
  }
  void import_states(int positions, std::span<const uint8_t> in) override {
    const size_t fixed = rs_.bytes();
    if (in.size() < fixed)
      fail("session state of {} bytes; this model's recurrent layers alone need {}", in.size(), fixed);
    kv_.copy_in(positions, in.first(in.size() - fixed));  // checks its size; throws before changing anything
    rs_.copy_in(in.last(fixed));
  }

 private:
  DevKvCache kv_;
  DevRecurrentStates rs_;
  CudaExecutor exec_;
  bool output_ready_ = false;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendContext& ctx) : ctx_(ctx), weights_(ctx.experts, ctx.vram) {}
  std::string name() const override { return "cuda"; }
  std::unique_ptr<BackendSession> new_session(const std::vector<StateDesc>& states, int max_positions) override {
    return std::make_unique<CudaSession>(weights_, ctx_, states, max_positions);
  }
  void synchronize() override { check(cudaDeviceSynchronize(), "synchronizing the device"); }
  void add_tier_stats(ExpertStats& s) const override {
    ExpertVram* v = weights_.vram();
    if (!v) return;
    std::lock_guard lk(v->mutex());
    const ExpertStats& d = v->stats();
    s.vram_slots += d.vram_slots;
    s.vram_hits += d.vram_hits;
    s.vram_misses += d.vram_misses;
    s.vram_evictions += d.vram_evictions;
    s.bytes_h2d += d.bytes_h2d;
    s.h2d_s += d.h2d_s;
  }
  const DeviceWeights& weights() const { return weights_; }

 private:
  BackendContext ctx_;
  DeviceWeights weights_;
};

}  // namespace

std::string cuda_unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("no usable CUDA device: {} ({})", cudaGetErrorString(e), cudaGetErrorName(e));
  }
  if (n == 0) return "no CUDA device is present";
  return "";
}

CudaDeviceInfo cuda_device_info() {
  CudaDeviceInfo info;
  int dev = 0;
  check(cudaGetDevice(&dev), "reading the current device");
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, dev), "reading the device's properties");
  info.name = p.name;
  info.multiprocessors = p.multiProcessorCount;
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "reading the device's memory");
  info.free_bytes = free_b;
  info.total_bytes = total_b;
  return info;
}

double cuda_copy_bandwidth_gbs(uint64_t bytes) {
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "allocating the bandwidth probe");
  const cudaError_t eb = cudaMalloc(&b, bytes);
  if (eb != cudaSuccess) {
    cudaFree(a);
    throw_cuda(eb, "allocating the bandwidth probe");
  }
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  std::vector<float> ms;
  try {
    check(cudaMemset(a, 1, bytes), "filling the bandwidth probe");
    check(cudaEventCreate(&e0), "creating an event");
    check(cudaEventCreate(&e1), "creating an event");
    for (int i = 0; i < 7; ++i) {
      check(cudaEventRecord(e0), "recording an event");
      check(cudaMemcpy(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice), "copying on the device");
      check(cudaEventRecord(e1), "recording an event");
      check(cudaEventSynchronize(e1), "waiting for the copy");
      float t = 0;
      check(cudaEventElapsedTime(&t, e0, e1), "timing the copy");
      if (i > 0) ms.push_back(t);  // the first copy warms up
    }
  } catch (...) {
    cudaFree(a);
    cudaFree(b);
    throw;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  std::sort(ms.begin(), ms.end());
  return 2.0 * double(bytes) / (double(ms[ms.size() / 2]) * 1e-3) / 1e9;
}

CudaWeightBytes cuda_weight_bytes(const Backend& backend) {
  const auto* b = dynamic_cast<const CudaBackend*>(&backend);
  if (!b) return {};
  return {b->weights().dense_bytes(), b->weights().expert_bytes()};
}

std::unique_ptr<Backend> make_cuda_backend(const BackendContext& ctx) {
  if (const std::string why = cuda_unavailable_reason(); !why.empty())
    fail("the CUDA backend cannot run here: {} (use --device cpu, or auto to fall back to the CPU)", why);
  return std::make_unique<CudaBackend>(ctx);
}

}  // namespace moeflux
