// How the MoE op reaches routed experts. The op asks for the experts one
// layer's router chose, computes, then releases them; between the two calls
// the views stay valid. The memory-mapped source below serves them straight
// from the weight files; the streaming store implements the same interface
// with budgets, caching and prefetch.
#pragma once
#include <cstdint>
#include <climits>
#include <memory>
#include <string>
#include <span>
#include <vector>

#include "backend/cpu/weight_view.h"
#include "moeflux/expert_stats.h"
#include "format/safetensors.h"
#include "model/arch.h"
#include "model/model_spec.h"

namespace moeflux {

struct ExpertWeights {
  WeightView gate, up, down;  // [ffn, hidden], [ffn, hidden], [hidden, ffn]
};

class ExpertSource {
 public:
  virtual ~ExpertSource() = default;
  // Fills out[i] with expert experts[i] of `layer`; valid until release().
  // At most max_acquire() experts may be held at once.
  virtual void acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) = 0;
  virtual void release(int layer, std::span<const int32_t> experts) = 0;
  // A hint that these experts of `layer` will likely be acquired soon.
  virtual void prefetch(int layer, std::span<const int32_t> experts) {}
  virtual bool wants_prefetch() const { return false; }
  virtual int max_acquire() const { return INT32_MAX; }
  virtual ExpertStats stats() const { return {}; }
  virtual std::string describe() const { return "all experts memory-mapped"; }
};

// Every expert of every MoE layer, read through the file memory maps.
class MmapExpertSource final : public ExpertSource {
 public:
  MmapExpertSource(const ModelSpec& spec, const ArchDef& arch, const TensorTable& st);
  void acquire(int layer, std::span<const int32_t> experts, std::span<ExpertWeights> out) override;
  void release(int layer, std::span<const int32_t> experts) override {}

 private:
  int experts_ = 0;
  std::vector<ExpertWeights> table_;  // [layer * experts + e]; empty views for dense layers
};

}  // namespace moeflux
