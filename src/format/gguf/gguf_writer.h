// Writes GGUF v3 files the way gguf-py's GGUFWriter and llama.cpp do: header,
// metadata in the order given, tensor infos with offsets packed in
// declaration order, each tensor padded to the alignment (`general.alignment`
// if the metadata sets it, else 32). Tensor bytes are streamed in declaration
// order, so memory stays bounded by the caller's chunk; the file appears
// under its final name only when complete (core/output_file.h: a unique
// temporary, fsync, rename; an existing file only with Replace::Yes).
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/output_file.h"
#include "format/ggml_types.h"
#include "format/gguf/gguf_value.h"

namespace moeflux {

struct GgufTensorDecl {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] is the row length
  uint64_t nbytes() const;     // throws when the row is not whole blocks or the size overflows
};

// The bytes of a GGUF v3 header up to the data section (padding included),
// and each tensor's offset relative to the data section. Validates what a
// reader would refuse: empty/duplicate keys, bad `general.alignment`, tensor
// names empty, duplicate or >= 64 bytes (llama.cpp's limit), more than 4
// dims, zero dims, rows not whole blocks. `path` is for messages.
std::string gguf_header_bytes(const GgufMetadata& metadata, const std::vector<GgufTensorDecl>& tensors,
                              const std::string& path, std::vector<uint64_t>* rel_offsets = nullptr);

class GgufWriter {
 public:
  // Writes the header to a temporary beside `path` at once; tensor bytes follow through write().
  GgufWriter(std::string path, const GgufMetadata& metadata, std::vector<GgufTensorDecl> tensors,
             Replace replace = Replace::No);
  ~GgufWriter() = default;  // an unfinished file is removed (OutputFile)
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Appends bytes; they fill the tensors in declaration order and may span
  // several of them. Alignment padding is inserted as each tensor completes.
  void write(std::span<const uint8_t> bytes);
  // Whole tensor at once: checks it is the next one declared and its size.
  void write_tensor(std::string_view name, std::span<const uint8_t> bytes);
  // Checks every declared byte was written, then publishes the file.
  void finish();

  uint64_t data_offset() const { return data_offset_; }
  uint64_t alignment() const { return alignment_; }

 private:
  void put(const void* p, size_t n);
  void pad_current();

  std::string path_;
  std::vector<GgufTensorDecl> tensors_;
  std::vector<uint64_t> sizes_;
  std::unique_ptr<OutputFile> out_;  // null once finished
  uint64_t alignment_ = 32, data_offset_ = 0;
  size_t current_ = 0;        // index of the tensor being filled
  uint64_t current_done_ = 0; // bytes of it written
};

}  // namespace moeflux
