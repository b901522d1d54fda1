// The text model of a multimodal checkpoint (Qwen3.5/3.6-MoE: tensors under
// "model.language_model.", a vision tower under "model.visual.") seen as a
// text-only one: its tensors under the names a text checkpoint uses
// ("model.layers.0..."), lm_head and anything outside "model." as they are,
// and the skipped prefixes (the vision tower) left out. The TensorRefs are
// the files' own (their names the stored ones, for messages).
#pragma once
#include <memory>
#include <span>
#include <string_view>

#include "format/tensor_table.h"

namespace moeflux {

class TextModelView final : public TensorTable {
 public:
  // Throws when no tensor lies under `prefix` (naming the prefix).
  TextModelView(std::unique_ptr<TensorTable> files, std::string_view prefix,
                std::span<const std::string_view> skipped);
  std::string describe() const override { return files_->describe(); }

 private:
  std::unique_ptr<TensorTable> files_;
};

}  // namespace moeflux
