#include "format/safetensors_writer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace moeflux {

uint64_t TensorDecl::nbytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorDecl> tensors,
                                     std::map<std::string, std::string> metadata, Replace replace)
    : path_(std::move(path)), tensors_(std::move(tensors)) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (auto& t : tensors_) {
    h[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  expected_ = off;
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  out_ = std::make_unique<OutputFile>(path_, replace);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  out_->write(len, 8);
  out_->write(header);
}

void SafetensorsWriter::write(std::span<const uint8_t> bytes) {
  if (written_ + bytes.size() > expected_)
    fail("{}: writing {} bytes past the {} declared", path_, written_ + bytes.size() - expected_, expected_);
  if (!out_) fail("{}: write after finish", path_);
  out_->write(bytes);
  written_ += bytes.size();
}

void SafetensorsWriter::finish() {
  if (written_ != expected_) fail("{}: {} of {} declared bytes written", path_, written_, expected_);
  if (!out_) fail("{}: finish called twice", path_);
  out_->commit();
  out_.reset();
}

std::vector<std::vector<TensorDecl>> plan_shards(const std::vector<TensorDecl>& tensors, uint64_t max_shard_bytes) {
  std::vector<std::vector<TensorDecl>> shards(1);
  uint64_t size = 0;
  for (auto& t : tensors) {
    if (!shards.back().empty() && size + t.nbytes() > max_shard_bytes) {
      shards.emplace_back();
      size = 0;
    }
    shards.back().push_back(t);
    size += t.nbytes();
  }
  return shards;
}

std::string shard_name(size_t index, size_t count) {
  if (count == 1) return "model.safetensors";
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, count);
}

std::string shard_index_json(const std::vector<std::vector<TensorDecl>>& shards) {
  nlohmann::ordered_json j;
  uint64_t total = 0;
  nlohmann::ordered_json map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < shards.size(); ++i)
    for (auto& t : shards[i]) {
      map[t.name] = shard_name(i, shards.size());
      total += t.nbytes();
    }
  j["metadata"] = {{"total_size", total}};
  j["weight_map"] = map;
  return j.dump(2);
}

}  // namespace moeflux
