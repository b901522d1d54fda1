// Where each routed expert's bytes are: for every (layer, expert) the extents
// of its gate, up and down matrices — file, offset, length, dtype, shape.
// Built from the tensor table without touching the data; works for
// per-expert tensors (safetensors) and for slices of stacked 3-D tensors
// (GGUF: expert e at base + e * stride) alike, since both are just extents.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "format/dtype.h"
#include "format/safetensors.h"
#include "model/arch.h"
#include "model/model_spec.h"

namespace moeflux {

struct Extent {
  uint32_t file = 0;     // index into ExpertIndex::files()
  uint64_t offset = 0;   // absolute byte offset in the file
  uint64_t length = 0;
  DType dtype = DType::BF16;
  int64_t rows = 0, cols = 0;
  const uint8_t* mapped = nullptr;  // the bytes in the file's memory map (never read by the store)
};

struct ExpertExtents {
  Extent gate, up, down;
  uint64_t bytes() const { return gate.length + up.length + down.length; }
};

class ExpertIndex {
 public:
  ExpertIndex(const ModelSpec& spec, const ArchDef& arch, const TensorTable& st);

  const ExpertExtents& at(int layer, int expert) const { return table_[size_t(layer) * experts_ + size_t(expert)]; }
  bool has_layer(int layer) const { return is_moe_[size_t(layer)] != 0; }
  const std::vector<std::string>& files() const { return files_; }
  int layers() const { return layers_; }
  int experts() const { return int(experts_); }
  uint64_t max_expert_bytes() const { return max_bytes_; }
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  int layers_;
  size_t experts_;
  std::vector<uint8_t> is_moe_;
  std::vector<ExpertExtents> table_;
  std::vector<std::string> files_;
  uint64_t max_bytes_ = 0, total_bytes_ = 0;
};

}  // namespace moeflux
