// Every weight a graph reads, on the device, uploaded once and shared by
// all sessions of a backend: matrices in their stored format (DevMat),
// vectors (norm weights, biases) as f32, and each MoE layer's routed
// experts as device arrays of DevMat indexed by expert id, so that the
// grouped products pick an expert chosen on the device.
//
// Everything must fit: before uploading, the bytes needed are compared with
// the device's free memory and a step that does not fit is refused, naming
// both (streaming experts from host memory is the next tier, issue 14).
#pragma once
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <memory>

#include "backend/cuda/dev_types.h"
#include "backend/cuda/expert_vram.h"
#include "experts/expert_source.h"
#include "graph/ir.h"

namespace moeflux::cuda {

struct DevMoeLayer {
  int experts = 0, ffn = 0, hidden = 0;
  const DevMat *gate = nullptr, *up = nullptr, *down = nullptr;  // device arrays [experts]
  DType gate_dtype = DType::F32, up_dtype = DType::F32, down_dtype = DType::F32;
  uint64_t bytes = 0;
  // The experts live in the device tier's slots (ExpertVram), not in the
  // tables above (which are null): the MoE op goes through ExpertPipeline.
  bool tiered = false;
};

class DeviceWeights {
 public:
  // With vram.enabled, routed experts go to a device slot cache of that
  // plan instead of being uploaded; dense weights stay resident.
  DeviceWeights(ExpertSource& experts, const VramTierOptions& vram);
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;

  // Uploads what g reads and is not on the device yet (thread-safe).
  void prepare(const Graph& g);
  // Valid after prepare() of a graph that reads them; throw if missing.
  const DevMat& mat(const TensorRef* t) const;
  const float* vec(const TensorRef* t) const;
  const DevMoeLayer& moe(int layer) const;

  uint64_t dense_bytes() const {
    std::lock_guard lk(mu_);
    return dense_bytes_;
  }
  uint64_t expert_bytes() const {
    std::lock_guard lk(mu_);
    return expert_bytes_;
  }
  // The device tier, null when every expert is resident.
  ExpertVram* vram() const { return vram_.get(); }
  ExpertSource& experts() const { return experts_; }

 private:
  struct Pending;
  ExpertSource& experts_;
  mutable std::mutex mu_;
  std::unordered_map<const TensorRef*, DevMat> mats_;
  std::unordered_map<const TensorRef*, const float*> vecs_;
  std::unordered_map<int, DevMoeLayer> moe_;
  std::unique_ptr<ExpertVram> vram_;
  std::vector<void*> blocks_;  // device allocations, one per prepare() that uploaded
  uint64_t dense_bytes_ = 0, expert_bytes_ = 0;
};

}  // namespace moeflux::cuda
