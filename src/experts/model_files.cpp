#include "experts/model_files.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/mapped_file.h"

namespace moeflux {

ModelFiles::ModelFiles(const TensorTable& st, bool guard_maps, std::chrono::milliseconds backstop) {
  auto note = [&](const uint8_t* p) {
    if (!p) return;
    const MappedFile* f = MappedFile::holding(p);
    if (!f || std::find(files_.begin(), files_.end(), f) != files_.end()) return;
    files_.push_back(f);
    paths_.push_back(f->path());
    if (guard_maps) f->guard();
  };
  for (auto& [_, t] : st.tensors()) {
    note(t->data);
    if (t->mlx) {
      note(t->mlx->scales.data);
      note(t->mlx->biases.data);
    }
  }
  // Watching starts after the files were opened; a change in between is
  // caught by the first check, which is due at once (changed_ below).
  watch_ = std::make_unique<FileWatch>(paths_, backstop);
  changed_ = !check().empty();
}

bool ModelFiles::check_due() {
  bool due = watch_->check_due() || changed_;
  for (const MappedFile* f : files_) due |= f->fault_offset() != MappingGuard::kNoFault;
  return due;
}

std::vector<ModelFileChange> ModelFiles::check() const {
  std::vector<ModelFileChange> out;
  for (const MappedFile* f : files_)
    if (std::string what = f->changed(); !what.empty()) out.push_back({f->path(), std::move(what)});
  return out;
}

std::vector<ModelFileChange> ModelFiles::poll() {
  if (!check_due()) return {};
  full_checks_++;
  auto changes = check();
  changed_ = !changes.empty();
  return changes;
}

std::string describe_changes(int layer, int expert, const std::vector<ModelFileChange>& changes) {
  std::string s = fmt::format("expert {} of layer {}: ", expert, layer);
  for (size_t i = 0; i < changes.size(); ++i)
    s += fmt::format("{}{} changed since it was opened ({})", i ? "; " : "", changes[i].path, changes[i].what);
  return s + "; reload the model";
}

}  // namespace moeflux
