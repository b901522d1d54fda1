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

namespace moeflux {

enum class ParamKind : uint8_t { Embedding, Norm, Linear, Bias, Router, ExpertLinear };

// What a tensor is in the model, whatever a format calls it.
enum class TensorSlot : uint8_t {
  None,  // not one of the model's (a name nothing binds)
  Embed, FinalNorm, LmHead,
  AttnNorm, FfnNorm, Q, K, V, O, QBias, KBias, VBias, OBias, QNorm, KNorm,
  MlpGate, MlpUp, MlpDown,                                     // dense layers
  Router, SharedGate, SharedUp, SharedDown, SharedExpertGate,  // MoE layers
  ExpertGate, ExpertUp, ExpertDown,                            // routed expert `expert`
};

struct ModelTensor {
  std::string name;
  std::vector<int64_t> shape;
  ParamKind kind;
  int layer = -1;  // -1: not in a layer
  TensorSlot slot = TensorSlot::None;
  int expert = -1;  // routed experts: which one
};

std::vector<ModelTensor> model_tensors(const ModelSpec& spec, const ArchDef& arch);

}  // namespace moeflux
