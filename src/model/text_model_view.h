// The text model of a multimodal checkpoint (Qwen3.5/3.6-MoE: tensors under
// "model.language_model.", a vision tower under "model.visual.") seen as a
// text-only one: its tensors under the names a text checkpoint uses
// ("model.layers.0..."), lm_head and anything outside "model." as they are,
// and the skipped prefixes (the vision tower) left out. The TensorRefs are
// the files' own (their names the stored ones, for messages).
//
// The published Qwen3.5 checkpoints store each MoE layer's routed experts
// fused, as transformers 5 holds them: mlp.experts.gate_up_proj [E, 2F, D]
// (each expert's gate rows, then its up rows) and mlp.experts.down_proj
// [E, D, F]. Expert e's gate, up and down are contiguous runs of those
// bytes, presented under the per-expert names (mlp.experts.<e>.gate_proj.
// weight ...) so the expert store reads them in place.
#pragma once
#include <deque>
#include <memory>
#include <span>
#include <string_view>

#include <string>

#include "format/tensor_table.h"

namespace moeflux {

class TextModelView final : public TensorTable {
 public:
  // Throws when no tensor lies under `prefix` (naming the prefix).
  // Names under `prefix` become `replacement` + the rest ("model." for the
  // transformers layout; "" for mlx-lm's "language_model." layout, whose
  // lm_head lies under the prefix too).
  TextModelView(std::unique_ptr<TensorTable> files, std::string_view prefix,
                std::span<const std::string_view> skipped, std::string_view replacement = "model.");
  std::string describe() const override { return files_->describe(); }

 private:
  // Adds the per-expert views of a fused experts tensor (true), or nothing.
  bool split_fused_experts(const std::string& name, const TensorRef& t);
  std::unique_ptr<TensorTable> files_;
  std::deque<TensorRef> slices_;  // the fused experts' per-expert views
};

}  // namespace moeflux
