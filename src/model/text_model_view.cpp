#include "model/text_model_view.h"

#include "core/error.h"

namespace moeflux {

bool TextModelView::split_fused_experts(const std::string& name, const TensorRef& t) {
  auto ends = [&](std::string_view sfx) {
    return name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0;
  };
  const bool gate_up = ends(".experts.gate_up_proj"), down = ends(".experts.down_proj");
  if (!gate_up && !down) return false;
  if (t.shape.size() != 3 || t.mlx || t.shape[0] <= 0 || (gate_up && t.shape[1] % 2 != 0))
    fail("tensor '{}' in {} has shape {} (dtype {}): fused experts must be [experts, {}, hidden] of a plain type",
         t.name, t.file, t.shape_str(), dtype_name(t.dtype), gate_up ? "2 x ffn" : "hidden, ffn");
  const std::string experts = name.substr(0, name.size() - (gate_up ? 12 : 9));  // "...experts."
  const int64_t E = t.shape[0], rows = t.shape[1], cols = t.shape[2];
  const uint64_t row_bytes = dtype_row_bytes(t.dtype, cols), expert_bytes = row_bytes * uint64_t(rows);
  if (expert_bytes * uint64_t(E) != t.nbytes)
    fail("tensor '{}' in {}: {} bytes for shape {}", t.name, t.file, t.nbytes, t.shape_str());
  auto add = [&](int64_t e, const char* proj, uint64_t at, int64_t n_rows) {
    TensorRef& r = slices_.emplace_back(t);
    r.name = t.name + "[" + std::to_string(e) + "]." + proj;
    r.shape = {n_rows, cols};
    r.offset = t.offset + at;
    r.data = t.data + at;
    r.nbytes = row_bytes * uint64_t(n_rows);
    index_.emplace(experts + std::to_string(e) + "." + proj + ".weight", &r);
  };
  for (int64_t e = 0; e < E; ++e) {
    const uint64_t base = uint64_t(e) * expert_bytes;
    if (gate_up) {
      add(e, "gate_proj", base, rows / 2);
      add(e, "up_proj", base + row_bytes * uint64_t(rows / 2), rows / 2);
    } else {
      add(e, "down_proj", base, rows);
    }
  }
  return true;
}

TextModelView::TextModelView(std::unique_ptr<TensorTable> files, std::string_view prefix,
                             std::span<const std::string_view> skipped, std::string_view replacement)
    : files_(std::move(files)) {
  auto starts = [](std::string_view n, std::string_view p) { return n.substr(0, p.size()) == p; };
  size_t text = 0;
  for (const auto& [name, ref] : files_->tensors()) {
    bool skip = false;
    for (std::string_view p : skipped) skip |= starts(name, p);
    if (skip) continue;
    if (starts(name, prefix)) {
      const std::string local = std::string(replacement) + name.substr(prefix.size());
      if (!split_fused_experts(local, *ref)) index_.emplace(local, ref);
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
