// GGUF files (versions 2 and 3, little-endian), read through a memory map
// and validated before anything is used: counts and string lengths bounded
// by the bytes left in the file (no allocation follows an unchecked count),
// value and tensor types known, dims positive without overflow, rows a whole
// number of quant blocks, tensor offsets aligned, inside the file and not
// overlapping, no duplicate keys or tensor names. Errors name the file, the
// key or tensor, and the byte offset of the field at fault.
//
// Layout (all little-endian): "GGUF", u32 version, u64 tensor count,
// u64 metadata count, metadata (string key, u32 type, value)*, tensor infos
// (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset)*,
// padding to `general.alignment` (default 32), tensor data. Strings are a
// u64 length and that many bytes. Offsets are relative to the data section.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "format/ggml_types.h"
#include "format/gguf/gguf_value.h"

namespace moeflux {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" as a little-endian u32
inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr uint32_t kGgufMaxDims = 4;             // GGML_MAX_DIMS: what ggml can hold
inline constexpr uint64_t kGgufMaxTensorName = 64;      // the GGUF spec's limit
inline constexpr uint64_t kGgufMaxKeyLength = 65535;    // the GGUF spec's limit
inline constexpr uint32_t kGgufMaxArrayNesting = 16;    // bounds recursion on hostile input

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] (ne[0]) is the row length, the innermost
  uint64_t n_elements = 0;
  uint64_t offset = 0;         // absolute byte offset in the file
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapped file (or the parsed span)

  // ne[i], 1 past the stored dims (as ggml pads shapes to 4 dims).
  uint64_t ne(size_t i) const { return i < dims.size() ? dims[i] : 1; }
  std::span<const uint8_t> bytes() const { return {data, size_t(nbytes)}; }
  std::string shape_str() const;  // "[4096, 151936]" in GGUF order
};

// Everything a GGUF header says, with pointers into the bytes it was parsed from.
struct GgufContents {
  std::string path;            // for messages
  uint32_t version = 0;
  uint64_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset = 0;    // absolute start of the tensor data section
  uint64_t file_size = 0;
  GgufMetadata metadata;
  std::vector<GgufTensor> tensors;  // file order
  std::map<std::string, size_t, std::less<>> tensor_index;

  const GgufTensor* find_tensor(std::string_view name) const;
  const GgufTensor& tensor(std::string_view name) const;  // throws naming the tensor and the file
};

// Parses and validates a whole GGUF image. Never reads outside `bytes`;
// every malformed input throws Error. `path` is only used in messages.
// Exposed for tests and the fuzzer.
GgufContents parse_gguf(std::span<const uint8_t> bytes, const std::string& path);

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);
  GgufFile(GgufFile&&) noexcept = default;  // the map keeps its address, tensor pointers stay valid
  GgufFile& operator=(GgufFile&&) noexcept = default;

  const std::string& path() const { return c_.path; }
  uint32_t version() const { return c_.version; }
  uint64_t alignment() const { return c_.alignment; }
  uint64_t data_offset() const { return c_.data_offset; }
  uint64_t file_size() const { return c_.file_size; }
  const GgufMetadata& metadata() const { return c_.metadata; }
  const std::vector<GgufTensor>& tensors() const { return c_.tensors; }
  const GgufTensor* find_tensor(std::string_view name) const { return c_.find_tensor(name); }
  const GgufTensor& tensor(std::string_view name) const { return c_.tensor(name); }
  const GgufContents& contents() const { return c_; }

 private:
  MappedFile map_;
  GgufContents c_;
};

}  // namespace moeflux
