// Writes a model as a llama.cpp GGUF, one tensor at a time: rows are read
// from a TensorSource as f32 in chunks, converted or quantized in parallel
// and streamed into the GgufWriter, so memory stays at a few chunks whatever
// the model's size. Names, metadata and expert stacking follow
// model/gguf_arch.h; tensor types follow convert/convert_type.h. Used by
// `convert` (safetensors source) and `synth --type` (random source).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "convert/convert_type.h"
#include "core/output_file.h"
#include "format/gguf/gguf_value.h"
#include "model/gguf_recipe.h"
#include "model/model_spec.h"
#include "model/tensor_list.h"

namespace moeflux {

class ThreadPool;

// A model's tensors as f32 values, by their Hugging Face name and shape.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // Rows [r0, r0 + n) of t into out (n * cols floats, cols = t.shape.back();
  // a 1-D tensor is one row). May use the pool; called from one thread.
  virtual void read_rows(const ModelTensor& t, int64_t r0, int64_t n, float* out, ThreadPool& pool) = 0;
};

// One GGUF tensor: its HF parts (one, or one per expert for a stacked
// tensor, in expert order) and the type chosen for it.
struct PlannedTensor {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order
  GgmlType type = GgmlType::F32;
  std::vector<ModelTensor> parts;
  // Head size of q/k rows to interleave as llama.cpp's LlamaModel.permute
  // does for arch "llama" (0: rows as they are).
  int permute_head_dim = 0;
  // Set when llama.cpp's converter transforms the HF tensor parts[0]: this
  // is source `recipe_source` of its recipe (model/gguf_recipe.h).
  std::shared_ptr<const GgufRecipe> recipe;
  int recipe_source = 0;
  uint64_t nbytes() const;
};

// The file's tensors in write order: token_embd, then each layer's tensors
// in model_tensors() order (so llama-quantize meets attn_v layer by layer),
// output_norm, output. Types chosen by TypeMix in that order; `fallbacks`
// receives how many tensors' rows forced a fallback type.
std::vector<PlannedTensor> plan_gguf_tensors(const ModelSpec& spec, ConvertType type, int* fallbacks = nullptr);

// The file's metadata: general.architecture, general.name, general.file_type,
// general.quantization_version (2), the model keys (gguf_arch.h), then
// `extra` (tokenizer keys); bos/eos ids from the spec when `extra` has none.
GgufMetadata gguf_file_metadata(const ModelSpec& spec, ConvertType type, const std::string& name,
                                const GgufMetadata& extra);

struct GgufWriteOptions {
  ConvertType type = ConvertType::Q8_0;
  std::string name;    // general.name
  GgufMetadata extra;  // appended after the model metadata (tokenizer.*)
  int threads = 0;     // 0: all cores
  bool progress = true;
  std::string progress_label = "convert";
  Replace replace = Replace::No;  // an existing out_path is replaced only with Replace::Yes (--force)
};

struct GgufWriteResult {
  uint64_t file_bytes = 0;
  size_t tensors = 0;
  std::map<std::string, size_t> type_counts;  // GGML type name -> tensors
  int fallbacks = 0;                          // tensors whose rows forced another type
  std::vector<std::string> warnings;          // what llama.cpp will not load or will run differently
};

// Writes `out_path` atomically (core/output_file.h). Refuses when the disk
// has less free space than the file needs, naming both numbers, and an
// existing or non-regular target unless opt.replace allows it.
GgufWriteResult write_model_gguf(const ModelSpec& spec, TensorSource& src, const std::string& out_path,
                                 const GgufWriteOptions& opt);

// Ways the spec differs from what llama.cpp's loader for its arch expects.
std::vector<std::string> llama_cpp_incompatibilities(const ModelSpec& spec);

}  // namespace moeflux
