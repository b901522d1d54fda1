#include "model/text_model_view.h"

#include "core/error.h"

namespace moeflux {

TextModelView::TextModelView(std::unique_ptr<TensorTable> files, std::string_view prefix,
                             std::span<const std::string_view> skipped)
    : files_(std::move(files)) {
  auto starts = [](std::string_view n, std::string_view p) { return n.substr(0, p.size()) == p; };
  size_t text = 0;
  for (const auto& [name, ref] : files_->tensors()) {
    bool skip = false;
    for (std::string_view p : skipped) skip |= starts(name, p);
    if (skip) continue;
    if (starts(name, prefix)) {
      index_.emplace("model." + name.substr(prefix.size()), ref);
      ++text;
    } else {
      index_.emplace(name, ref);
    }
  }
  if (text == 0)
    fail("{}: no tensor under '{}', where the config (with 'text_config') says the text model lies",
         files_->describe(), prefix);
}

}  // namespace moeflux
