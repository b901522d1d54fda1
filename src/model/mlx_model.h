// An mlx-lm checkpoint (mlx-community layout) seen as a model: its tensors
// under Hugging Face names and shapes, so that the binder, the expert index
// and the stores load it as they load any safetensors model.
//
// Two things differ from a transformers checkpoint, and both are presented
// in place, without copies:
//   - MLX affine quantization: module <m> stores <m>.weight (uint32,
//     [.., rows, cols * bits / 32]), <m>.scales and <m>.biases
//     ([.., rows, cols / group_size]). It becomes one TensorRef "<m>.weight"
//     of dtype MLX and logical shape [rows, cols] whose `mlx` names the
//     scales and biases.
//   - Stacked experts: mlx-lm's sanitize() joins the routed experts of a
//     layer into <layer><moe prefix>switch_mlp.{gate,up,down}_proj with a
//     leading expert dimension (quantized or not). Expert e becomes the
//     TensorRef of the Hugging Face per-expert name pointing at slice e of
//     the weight, and of the scales and biases, which the expert store then
//     reads as extents (9 per expert when quantized).
// Which modules are quantized is read from the files, as mlx-lm does (a
// module with <m>.scales is); bits and group size come from config.json's
// "quantization" default or that module's override.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "format/safetensors.h"
#include "model/model_spec.h"

namespace moeflux {

class MlxModel final : public TensorTable {
 public:
  MlxModel(const ModelSpec& spec, std::unique_ptr<TensorTable> files);
  std::string describe() const override { return files_->describe(); }
  const TensorTable& files() const { return *files_; }

 private:
  std::unique_ptr<TensorTable> files_;
  std::deque<TensorRef> refs_;
  std::deque<std::vector<uint8_t>> owned_;  // tensors rebuilt in memory (DeepSeek's kv_b_proj)
};

// True when the safetensors model needs the MLX view: config.json has MLX
// quantization, or the experts are stacked as switch_mlp tensors.
bool is_mlx_layout(const ModelSpec& spec, const TensorTable& files);

}  // namespace moeflux
