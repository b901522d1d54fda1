// A model's tensors by name, whatever file format holds them. The binder,
// the expert index and the stores read weights only through this, so a
// safetensors directory and a GGUF file load the same way: each format
// presents its tensors under Hugging Face names with Hugging Face shapes,
// pointing at the bytes in place (no copies).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "format/dtype.h"

namespace moeflux {

// Bytes of a file that belong to a tensor stored in pieces.
struct TensorPart {
  std::string file;
  uint64_t offset = 0;  // absolute byte offset in that file
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;
};

// The quantization of an MLX affine matrix (dtype MLX), whose per-group
// scales and biases are tensors of their own, possibly in another shard;
// also an FP8 matrix's (dtype F8E4M3) block scales: bits 8, group_size the
// square block, scales its weight_scale_inv, no biases.
struct MlxQuantRef {
  int bits = 4;
  int group_size = 64;
  DType scale_dtype = DType::BF16;  // of the scales and the biases: F16, BF16 or F32
  TensorPart scales, biases;        // [rows, cols / group_size] each
};

// A tensor stored in a file: where it is and what it holds. `data` points
// into the file's memory map. For dtype MLX, shape is the logical
// [rows, cols] of the matrix, the bytes are its packed uint32 weight
// [rows, cols * bits / 32] and `mlx` says where the rest is.
struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string file;      // path of the file holding it
  uint64_t offset = 0;   // absolute byte offset in that file
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;
  std::optional<MlxQuantRef> mlx;  // set exactly when dtype == DType::MLX

  int64_t numel() const;
  // Every byte the tensor is stored in: nbytes plus MLX scales and biases.
  uint64_t stored_bytes() const { return nbytes + (mlx ? mlx->scales.nbytes + mlx->biases.nbytes : 0); }
  int64_t dim(size_t i) const { return shape.at(i); }
  std::string shape_str() const;
};

class TensorTable {
 public:
  virtual ~TensorTable() = default;
  const TensorRef* find(const std::string& name) const;
  const TensorRef& get(const std::string& name) const;  // throws naming the tensor and where it was looked for
  const std::map<std::string, const TensorRef*>& tensors() const { return index_; }
  uint64_t total_bytes() const;  // stored bytes of every tensor
  // Where the tensors come from, for messages: "the model's safetensors files", "GGUF file x.gguf".
  virtual std::string describe() const = 0;

 protected:
  std::map<std::string, const TensorRef*> index_;
};

}  // namespace moeflux
