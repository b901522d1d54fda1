// How an architecture whose layers are not the shared pre-norm layer is
// spelled in GGUF, llama.cpp's way (ArchDef::gguf.layout): the model
// metadata llama.cpp's loader reads, the ModelSpec read back from it, each
// tensor's GGUF name, and the tensors llama.cpp's converter transforms
// (gguf_recipe.h). gguf_arch.cpp dispatches here when an arch has one.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf/gguf_file.h"
#include "format/gguf/gguf_value.h"
#include "model/gguf_recipe.h"
#include "model/model_spec.h"
#include "model/tensor_list.h"

namespace moeflux {

struct GgufLayout {
  // The arch's metadata keys after general.architecture (add_gguf_model_metadata).
  void (*add_metadata)(const ModelSpec& spec, GgufMetadata& md);
  // model_spec_from_gguf for this arch (general.architecture already matched).
  ModelSpec (*spec_from_gguf)(const GgufMetadata& md, const std::vector<GgufTensor>& tensors);
  // The GGUF name of t when it is stored as it is (gguf_location); "" when
  // the generic slot -> name table applies.
  std::string (*tensor_name)(const ModelSpec& spec, const ModelTensor& t);
  // True (and `out` filled) when llama.cpp's converter transforms t.
  bool (*recipe)(const ModelSpec& spec, const ModelTensor& t, GgufRecipe& out);
  // Tensors of a file that are known and not used (multi-token-prediction
  // layers past the model's own); may be null.
  bool (*ignored)(const ModelSpec& spec, std::string_view gguf_name) = nullptr;
  // What llama.cpp's loader for the arch will not load or will run
  // differently (llama_cpp_incompatibilities); may be null.
  std::vector<std::string> (*incompatibilities)(const ModelSpec& spec) = nullptr;
};

// The GGUF recipe of t for spec's arch, if its layout has one.
bool gguf_recipe(const ModelSpec& spec, const ModelTensor& t, GgufRecipe& out);

// Helpers for the layouts' readers (gguf_arch.cpp's checks).
namespace gguf_read {
std::string key(std::string_view arch, std::string_view suffix);
std::string blk(int layer, std::string_view what);
int dim(const GgufMetadata& md, const std::string& k);                // required, in [1, 2^24]
int opt_dim(const GgufMetadata& md, const std::string& k, int def);  // absent: def
float positive_f32(const GgufMetadata& md, const std::string& k, std::optional<float> def, float max);
void put_u32(GgufMetadata& md, std::string k, int64_t v);
// True for a "blk.N." tensor with N >= layers (multi-token-prediction blocks).
bool block_at_or_past(std::string_view name, int layers);
// bos/eos from tokenizer.ggml.*_token_id, vocab from token_embd, tie from output.weight.
void read_vocab_and_tokens(const GgufMetadata& md, const std::vector<GgufTensor>& tensors, ModelSpec& s);
}  // namespace gguf_read

}  // namespace moeflux
