// The file types `moeflux convert --type` writes, and the GGML type of each
// tensor in them, chosen the way llama.cpp does: convert_hf_to_gguf.py for
// the float types (f32/f16/bf16), llama-quantize (llama-quant.cpp,
// llama_tensor_get_type) for the quantized ones, from an F32 file written by
// the converter (so tensors llama-quantize leaves alone are F32).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "format/ggml_types.h"
#include "model/model_spec.h"

namespace moeflux {

enum class ConvertType : uint8_t { F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K, MXFP4 };

std::optional<ConvertType> parse_convert_type(std::string_view name);  // "q4_k_m", ...
std::string_view convert_type_name(ConvertType t);
std::string convert_type_list();  // "f32, f16, ..." for messages and --help
// general.file_type: llama.h's LLAMA_FTYPE_* (MXFP4 is MOSTLY_MXFP4_MOE).
uint32_t llama_file_type(ConvertType t);

// The per-tensor choice. Call choose() once per tensor, layer by layer:
// like llama-quantize it counts the attn_v tensors seen so far and gives the
// "more bits" ones Q6_K in *_K_M files; llama-quantize visits tensors sorted
// by layer number (llama_model_loader's weight_name_comparer), so the i-th
// attn_v is layer i's there too.
class TypeMix {
 public:
  // `names`: every GGUF tensor of the file (to count attn_v tensors and see
  // whether output.weight exists, i.e. whether embeddings are tied).
  TypeMix(ConvertType type, const ModelSpec& spec, const std::vector<std::string>& names);
  GgmlType choose(const std::string& name, const std::vector<uint64_t>& dims);
  // How many tensors fell back to another type because their rows are not
  // whole blocks (llama-quant's n_fallback).
  int fallbacks() const { return fallbacks_; }

 private:
  GgmlType choose_quantized(const std::string& name, const std::vector<uint64_t>& dims);
  GgmlType fallback(GgmlType t, uint64_t ncols);

  ConvertType type_;
  int n_layer_, n_expert_;
  bool tied_ = true;
  int n_attention_wv_ = 0, i_attention_wv_ = 0, i_ffn_down_ = 0;
  int fallbacks_ = 0;
};

}  // namespace moeflux
