// Every tensor a model of this spec has: its Hugging Face name (from the
// architecture's table: arch.h), shape, kind of parameter and the slot it
// fills. This list is the one place the tensors are written out: the
// binder (weights.cpp) fills ModelWeights by slot, the GGUF names
// (gguf_arch.cpp) come from the slot, parameter and byte counts, synth and
// the converter walk it.
#pragma once
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/model_spec.h"
#include "model/tensor_slot.h"

namespace moeflux {

enum class ParamKind : uint8_t { Embedding, Norm, Linear, Bias, Router, ExpertLinear };

struct ModelTensor {
  std::string name;
  std::vector<int64_t> shape;
  ParamKind kind;
  int layer = -1;  // -1: not in a layer
  TensorSlot slot = TensorSlot::None;
  int expert = -1;  // routed experts: which one
  uint64_t numel() const;
};

// The list being made: the architecture's layer hook (ArchDef::layer_tensors)
// adds its layer's tensors, usually through the shared blocks' tables below.
class TensorList {
 public:
  TensorList(const ModelSpec& spec, const ArchDef& arch, bool all_experts)
      : spec(spec), arch(arch), all_experts_(all_experts) {}
  const ModelSpec& spec;
  const ArchDef& arch;

  void add(std::string name, std::vector<int64_t> shape, ParamKind kind, int layer, TensorSlot slot, int expert = -1);
  // The shared blocks' tensors (blocks.h), shaped by the spec:
  // q/k/v/o with the biases and q/k norms the spec asks for, under `prefix`.
  void attention(const std::string& prefix, int layer);
  // gate_proj / up_proj / down_proj under `prefix`.
  void swiglu_mlp(const std::string& prefix, int64_t ffn, int layer, TensorSlot gate, TensorSlot up,
                  TensorSlot down);
  // Router, routed experts (arch.expert_names), shared expert and its gate,
  // under `prefix` (arch.moe_prefix inside the layer).
  void moe(const std::string& prefix, int layer);
  // The shared pre-norm layer: input norm, attention, post-attention norm,
  // then the MoE block or a dense MLP (layer_is_moe).
  void standard_layer(int layer);

  std::vector<ModelTensor> take() { return std::move(out_); }

 private:
  bool all_experts_;
  std::vector<ModelTensor> out_;
};

// Every tensor of the model: embedding, each layer's (the architecture's
// layer_tensors hook, or the standard layer), final norm and lm_head.
// all_experts = false lists routed expert 0 of each layer only (counting).
std::vector<ModelTensor> model_tensors(const ModelSpec& spec, const ArchDef& arch, bool all_experts = true);

// Parameter counts derived from the table (inspect, budgets, floors).
struct ParamCounts {
  uint64_t dense = 0;          // every tensor but the routed experts
  uint64_t expert = 0;         // one routed expert (of the first MoE layer)
  uint64_t experts_total = 0;  // every routed expert
  uint64_t experts_active = 0; // routed-expert parameters a token uses (top_k per MoE layer)
};
ParamCounts count_params(const ModelSpec& spec);

}  // namespace moeflux
