// A GGUF file seen as a model: its ModelSpec from the metadata and its
// tensors under Hugging Face names and shapes, so the binder, the expert
// index and the stores load it exactly as they load safetensors. Nothing is
// copied: a stacked expert tensor (blk.N.ffn_gate_exps) becomes one TensorRef
// per expert pointing at expert e's slice, which the expert store then reads
// as an extent like any other. Only tensors that llama.cpp's converter
// transformed (norms stored as 1 + w, A_log as -exp, Qwen3-Next's split
// qkvz, DeepSeek's k_b/v_b; gguf_recipe.h) are rebuilt in memory: these are
// dense, never routed experts.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "format/gguf/gguf_file.h"
#include "format/tensor_table.h"
#include "model/model_spec.h"

namespace moeflux {

class GgufModel final : public TensorTable {
 public:
  explicit GgufModel(const std::string& path);
  const ModelSpec& spec() const { return spec_; }
  const GgufFile& file() const { return file_; }
  std::string describe() const override { return "GGUF file " + file_.path(); }

 private:
  GgufFile file_;
  ModelSpec spec_;
  std::vector<TensorRef> refs_;
  // Tensors rebuilt from what llama.cpp's converter transformed (gguf_recipe.h);
  // a deque, so that their addresses stay put as it grows.
  std::deque<std::vector<uint8_t>> owned_;
};

// True when `path` is a regular file starting with the GGUF magic.
bool is_gguf_file(const std::string& path);

// A model from any supported path: a Hugging Face directory (config.json and
// safetensors, including mlx-lm's quantized and stacked-expert layouts), a
// single .safetensors file with config.json beside it, or a GGUF file.
struct OpenedModel {
  ModelSpec spec;
  std::unique_ptr<TensorTable> tensors;
};
OpenedModel open_model(const std::string& path);

}  // namespace moeflux
