// Every tensor a model of this spec has in Hugging Face naming, with its
// shape and what kind of parameter it is. Used to write synthetic models and
// to count bytes; bind_weights() checks the same names when loading.
#pragma once
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/model_spec.h"

namespace moeflux {

enum class ParamKind : uint8_t { Embedding, Norm, Linear, Bias, Router, ExpertLinear };

struct ModelTensor {
  std::string name;
  std::vector<int64_t> shape;
  ParamKind kind;
  int layer = -1;  // -1: not in a layer
};

std::vector<ModelTensor> model_tensors(const ModelSpec& spec, const ArchDef& arch);

}  // namespace moeflux
