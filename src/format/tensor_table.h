// A model's tensors by name, whatever file format holds them. The binder,
// the expert index and the stores read weights only through this, so a
// safetensors directory and a GGUF file load the same way: each format
// presents its tensors under Hugging Face names with Hugging Face shapes,
// pointing at the bytes in place (no copies).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "format/dtype.h"

namespace moeflux {

// A tensor stored in a file: where it is and what it holds. `data` points
// into the file's memory map.
struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string file;      // path of the file holding it
  uint64_t offset = 0;   // absolute byte offset in that file
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;

  int64_t numel() const;
  int64_t dim(size_t i) const { return shape.at(i); }
  std::string shape_str() const;
};

class TensorTable {
 public:
  virtual ~TensorTable() = default;
  const TensorRef* find(const std::string& name) const;
  const TensorRef& get(const std::string& name) const;  // throws naming the tensor and where it was looked for
  const std::map<std::string, const TensorRef*>& tensors() const { return index_; }
  uint64_t total_bytes() const;
  // Where the tensors come from, for messages: "the model's safetensors files", "GGUF file x.gguf".
  virtual std::string describe() const = 0;

 protected:
  std::map<std::string, const TensorRef*> index_;
};

}  // namespace moeflux
