// Hugging Face tensors that llama.cpp's converter does not store as they
// are (convert_hf_to_gguf.py's modify_tensors): rows regrouped across
// tensors (Qwen3-Next's in_proj_qkvz split into attn_qkv and attn_gate),
// value heads reordered (Qwen3.5), a matrix split and transposed
// (DeepSeek's kv_b_proj into attn_k_b and attn_v_b), values changed
// (zero-centred norms + 1, A_log -> -exp(A_log)).
//
// One description serves both directions: `at` says where each element of
// the Hugging Face tensor lives in GGUF, `fn` what was done to its value.
// The converter scatters forward (write_model_gguf); the GGUF reader
// gathers back (materialize_recipe), so a file llama.cpp wrote and a file
// moeflux wrote read back the same way.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/gguf/gguf_file.h"
#include "format/tensor_table.h"

namespace moeflux {

// What the converter did to a value: gguf = fn(hf).
enum class GgufValueFn : uint8_t {
  Same,
  PlusOne,  // zero-centred RMSNorm weights stored as 1 + w (llama.cpp scales by w)
  NegExp,   // A_log stored as A = -exp(A_log)
};

// An element of a GGUF tensor: which source, which row (flat over every
// dimension above ne0) and which column (index in ne0).
struct GgufCoord {
  int source = 0;
  int64_t row = 0, col = 0;
};

struct GgufRecipe {
  // The GGUF tensors the HF tensor is stored in, and their GGUF dims (ne0 first).
  std::vector<std::string> sources;
  std::vector<std::vector<uint64_t>> source_dims;
  // Where element (r, c) of the HF tensor (viewed as rows x cols: shape[0]
  // x the rest; a 1-D tensor is one row) lives.
  std::function<GgufCoord(int64_t r, int64_t c)> at;
  // at(r, c).col == c for every c: rows move whole, so a quantized row
  // keeps its bytes (the reader copies rows instead of dequantizing).
  bool whole_rows = false;
  GgufValueFn fn = GgufValueFn::Same;
};

// The HF tensor's rows x cols view (1-D: 1 x n; 3-D [C, 1, K]: C x K).
int64_t recipe_rows(const std::vector<int64_t>& hf_shape);
int64_t recipe_cols(const std::vector<int64_t>& hf_shape);

// Writing: the GGUF tensors of `recipe` as f32 (each in GGUF row-major
// order), from the HF tensor's values `hf` (rows x cols, row-major).
std::vector<std::vector<float>> scatter_recipe(const GgufRecipe& recipe, const std::vector<int64_t>& hf_shape,
                                               const float* hf);

// Reading: the HF tensor `name` of `hf_shape` rebuilt from the GGUF file's
// tensors, into `storage` (owned by the caller, kept alive as long as the
// returned TensorRef). Whole rows of one GGML type are copied as bytes
// (the tensor keeps its type); anything else is dequantized and rebuilt in
// f32. Throws naming the GGUF tensor when one is missing or mis-shaped.
TensorRef materialize_recipe(const GgufRecipe& recipe, const std::string& name, const std::vector<int64_t>& hf_shape,
                             const GgufFile& file, std::vector<uint8_t>& storage);

}  // namespace moeflux
