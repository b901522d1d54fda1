// Where each routed expert's bytes are: for every (layer, expert) the extents
// of its gate, up and down matrices — file, offset, length, dtype, shape.
// Built from the tensor table without touching the data; works for
// per-expert tensors (safetensors) and for slices of stacked 3-D tensors
// (GGUF, mlx-lm's switch_mlp: expert e at base + e * stride) alike, since
// both are just extents. An MLX affine matrix has three: its packed weight,
// scales and biases, so a quantized expert is read as up to 9 ranges.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "format/weight_view.h"
#include "format/dtype.h"
#include "format/safetensors.h"
#include "model/arch.h"
#include "model/model_spec.h"

namespace moeflux {

// Bytes of one of the index's files.
struct FileRange {
  uint32_t file = 0;     // index into ExpertIndex::files()
  uint64_t offset = 0;   // absolute byte offset in the file
  uint64_t length = 0;
  const uint8_t* mapped = nullptr;  // the bytes in the file's memory map (never read by the store)
};

// One matrix of an expert.
struct Extent {
  uint32_t file = 0;     // index into ExpertIndex::files()
  uint64_t offset = 0;   // absolute byte offset in the file
  uint64_t length = 0;   // the matrix's bytes (MLX: the packed weight)
  DType dtype = DType::BF16;
  int64_t rows = 0, cols = 0;
  const uint8_t* mapped = nullptr;  // the bytes in the file's memory map (never read by the store)
  // dtype MLX only: bits, group size and where the scales and biases are;
  // F8E4M3: group_size is the block, scales the weight_scale_inv (no biases).
  uint8_t bits = 0;
  uint16_t group_size = 0;
  DType scale_dtype = DType::BF16;
  FileRange scales, biases;

  FileRange data() const { return {file, offset, length, mapped}; }
  uint64_t bytes() const { return length + scales.length + biases.length; }
  // data, then scales and biases (MLX) or the block scales (FP8)
  int ranges() const { return dtype == DType::MLX ? 3 : dtype == DType::F8E4M3 ? 2 : 1; }
  FileRange range(int i) const { return i == 0 ? data() : i == 1 ? scales : biases; }
};

struct ExpertExtents {
  Extent gate, up, down;
  uint64_t bytes() const { return gate.bytes() + up.bytes() + down.bytes(); }
  const Extent& matrix(int i) const { return i == 0 ? gate : i == 1 ? up : down; }
  // Every byte range of the expert, matrix by matrix: gate, up, down, each
  // its data then (MLX) its scales and biases. At most kMaxRanges.
  static constexpr int kMaxRanges = 9;
  int ranges(FileRange* out) const {
    int n = 0;
    for (int m = 0; m < 3; ++m)
      for (int i = 0; i < matrix(m).ranges(); ++i) out[n++] = matrix(m).range(i);
    return n;
  }
};

// The view of matrix x whose data (and, MLX, scales and biases) are at
// these addresses: the file's memory map or an expert slot.
inline WeightView view_of(const Extent& x, const uint8_t* data, const uint8_t* scales, const uint8_t* biases) {
  WeightView w{data, x.dtype, x.rows, x.cols};
  if (x.dtype == DType::MLX || x.dtype == DType::F8E4M3) {
    w.scales = scales;
    w.biases = biases;
    w.scale_dtype = x.scale_dtype;
    w.bits = x.bits;
    w.group_size = x.group_size;
  }
  return w;
}

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
