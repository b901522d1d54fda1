// The model's non-expert tensors, bound by name and checked against the
// spec's shapes. Routed experts are not here: the MoE op reaches them through
// an ExpertSource.
#pragma once
#include <vector>

#include "format/safetensors.h"
#include "model/arch.h"
#include "model/model_spec.h"

namespace moeflux {

struct AttentionWeights {
  const TensorRef *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  const TensorRef *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;
  const TensorRef *q_norm = nullptr, *k_norm = nullptr;
};

struct MlpWeights {
  const TensorRef *gate = nullptr, *up = nullptr, *down = nullptr;
};

struct LayerWeights {
  const TensorRef *attn_norm = nullptr, *ffn_norm = nullptr;
  AttentionWeights attn;
  MlpWeights mlp;                         // dense layers
  const TensorRef* router = nullptr;      // MoE layers: [experts, hidden]
  MlpWeights shared;                      // shared expert, where the model has one
  const TensorRef* shared_gate = nullptr; // [1, hidden]
};

struct ModelWeights {
  const TensorRef *embed = nullptr, *final_norm = nullptr, *lm_head = nullptr;
  std::vector<LayerWeights> layers;
};

ModelWeights bind_weights(const ModelSpec& spec, const ArchDef& arch, const TensorTable& st);

// Checks that `t` has exactly `shape` and a type the kernels compute on:
// a float or block-quantized matrix, or (vector = true: norms, biases) a
// float vector. Throws naming the tensor, its file and both shapes.
void check_tensor(const TensorRef& t, std::initializer_list<int64_t> shape, bool vector = false);

}  // namespace moeflux
