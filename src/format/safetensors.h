// Safetensors files: one file, or a sharded set described by
// model.safetensors.index.json. Headers are validated strictly before any
// tensor is used: header length bounds, well-formed JSON, known dtypes,
// shape x dtype size equal to the byte range, ranges inside the file and not
// overlapping.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "format/dtype.h"
#include "format/tensor_table.h"

namespace moeflux {

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // as the reference implementation

  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return map_.path(); }
  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile map_;
  std::map<std::string, TensorRef> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Parses and validates a header already read into memory. Exposed for tests
// and fuzzing; `file_size` is the whole file's size, `path` is for messages.
std::map<std::string, TensorRef> parse_safetensors_header(std::span<const uint8_t> file_start, uint64_t file_size,
                                                          const std::string& path,
                                                          std::map<std::string, std::string>* metadata);

// All tensors of a model directory (or a single .safetensors file).
class SafetensorsModel final : public TensorTable {
 public:
  explicit SafetensorsModel(const std::string& path);
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  std::string describe() const override { return "the model's safetensors files"; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace moeflux
