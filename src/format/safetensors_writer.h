// Streams tensors into safetensors files: the header is written first from
// the declared tensors, then each tensor's bytes in order, so memory stays
// bounded by one tensor chunk. Files appear under their final name only when
// complete (core/output_file.h: a unique temporary, fsync, rename; an
// existing file only with Replace::Yes).
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/output_file.h"
#include "format/dtype.h"

namespace moeflux {

struct TensorDecl {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorDecl> tensors,
                    std::map<std::string, std::string> metadata = {}, Replace replace = Replace::No);
  // Appends bytes of the current tensor; tensors are filled in declaration order.
  void write(std::span<const uint8_t> bytes);
  // Checks every declared byte was written, then publishes the file.
  void finish();

 private:
  std::string path_;
  std::vector<TensorDecl> tensors_;
  std::unique_ptr<OutputFile> out_;  // null once finished
  uint64_t expected_ = 0, written_ = 0;
};

// Splits tensors into shards of at most `max_shard_bytes` (a tensor larger
// than that gets a shard of its own), named like Hugging Face's:
// model-00001-of-00003.safetensors. One shard: model.safetensors, no index.
std::vector<std::vector<TensorDecl>> plan_shards(const std::vector<TensorDecl>& tensors, uint64_t max_shard_bytes);
std::string shard_name(size_t index, size_t count);
// model.safetensors.index.json for the shards.
std::string shard_index_json(const std::vector<std::vector<TensorDecl>>& shards);

}  // namespace moeflux
