// FP8 checkpoints as DeepSeek-V3's original safetensors store them
// (config.json quantization_config {"quant_method": "fp8", "fmt": "e4m3",
// "weight_block_size": [b, b], "activation_scheme": "dynamic"}): module <m>
// holds <m>.weight (F8_E4M3 [rows, cols]) and <m>.weight_scale_inv (F32 or
// BF16 [ceil(rows / b), ceil(cols / b)]). Each such weight becomes one
// TensorRef of dtype F8E4M3 whose `mlx` part names its block scales
// (bits 8, group_size b, no biases), read as they are (quant/fp8_block.h
// computes on them); every other tensor passes through unchanged.
#pragma once
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "format/tensor_table.h"
#include "model/model_spec.h"

namespace moeflux {

class Config;

// The block size of config.json's FP8 quantization_config; nullopt when
// there is none or it is another method. Refuses, by name, what is not
// DeepSeek's scheme (another fmt, static activation scales, non-square blocks).
std::optional<int> parse_fp8_quantization(const Config& cfg);

class Fp8Model final : public TensorTable {
 public:
  // Throws naming the tensor when an F8_E4M3 weight lacks its
  // weight_scale_inv, or the scales' shape or dtype is wrong.
  Fp8Model(int block, std::unique_ptr<TensorTable> files);
  std::string describe() const override { return files_->describe(); }

 private:
  std::unique_ptr<TensorTable> files_;
  std::deque<TensorRef> refs_;
};

}  // namespace moeflux
