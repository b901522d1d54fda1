#include "format/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/read_file.h"

namespace moeflux {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorRef::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

namespace {

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Element count times element size, refusing overflow.
bool checked_bytes(const std::vector<int64_t>& shape, size_t elem, uint64_t* out) {
  unsigned __int128 n = elem;
  for (int64_t d : shape) {
    n *= uint64_t(d);
    if (n > (unsigned __int128)UINT64_MAX) return false;
  }
  *out = uint64_t(n);
  return true;
}

}  // namespace

std::map<std::string, TensorRef> parse_safetensors_header(std::span<const uint8_t> file_start, uint64_t file_size,
                                                          const std::string& path,
                                                          std::map<std::string, std::string>* metadata) {
  if (file_size < 8 || file_start.size() < 8)
    fail("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", path, file_size);
  const uint64_t header_len = read_le64(file_start.data());
  if (header_len < 2 || header_len > SafetensorsFile::kMaxHeaderBytes)
    fail("{}: header length {} is outside [2, {}]", path, header_len, SafetensorsFile::kMaxHeaderBytes);
  if (header_len > file_size - 8)
    fail("{}: header length {} runs past the end of the file ({} bytes): truncated?", path, header_len, file_size);
  if (file_start.size() < 8 + header_len) fail("{}: header not fully available", path);
  const char* hb = reinterpret_cast<const char*>(file_start.data() + 8);
  json header;
  try {
    header = json::parse(hb, hb + header_len);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number beyond double (1e400)
    fail("{}: header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail("{}: header must be a JSON object", path);

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;
  std::map<std::string, TensorRef> out;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("{}: __metadata__ must be an object", path);
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail("{}: __metadata__.{} must be a string", path, k);
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) fail("{}: tensor '{}': entry must be an object", path, name);
    TensorRef t;
    t.name = name;
    t.file = path;
    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) fail("{}: tensor '{}': missing string 'dtype'", path, name);
    auto parsed = dtype_from_safetensors(dt->get<std::string>());
    if (!parsed) fail("{}: tensor '{}': unknown dtype '{}'", path, name, dt->get<std::string>());
    t.dtype = *parsed;
    auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) fail("{}: tensor '{}': missing array 'shape'", path, name);
    for (auto& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        fail("{}: tensor '{}': shape entries must be non-negative integers, got {}", path, name, d.dump());
      t.shape.push_back(d.get<int64_t>());
    }
    auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail("{}: tensor '{}': 'data_offsets' must be two non-negative integers", path, name);
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end) fail("{}: tensor '{}': data_offsets [{}, {}] are reversed", path, name, begin, end);
    if (end > data_size)
      fail("{}: tensor '{}': data_offsets [{}, {}] run past the data section ({} bytes): truncated file?", path,
           name, begin, end, data_size);
    uint64_t expect = 0;
    if (!checked_bytes(t.shape, dtype_size(t.dtype), &expect))
      fail("{}: tensor '{}': shape {} overflows", path, name, t.shape_str());
    if (expect != end - begin)
      fail("{}: tensor '{}': shape {} x {} needs {} bytes but data_offsets [{}, {}] hold {}", path, name,
           t.shape_str(), dtype_name(t.dtype), expect, begin, end, end - begin);
    t.offset = data_start + begin;
    t.nbytes = end - begin;
    out.emplace(name, std::move(t));
  }

  std::vector<const TensorRef*> by_offset;
  for (auto& [_, t] : out) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorRef* prev = by_offset[i - 1];
    const TensorRef* cur = by_offset[i];
    if (cur->nbytes > 0 && prev->nbytes > 0 && cur->offset < prev->offset + prev->nbytes)
      fail("{}: tensors '{}' and '{}' overlap (bytes {}..{} and {}..{})", path, prev->name, cur->name,
           prev->offset, prev->offset + prev->nbytes, cur->offset, cur->offset + cur->nbytes);
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : map_(path) {
  tensors_ = parse_safetensors_header(map_.bytes(), map_.size(), path, &metadata_);
  for (auto& [_, t] : tensors_) t.data = map_.data() + t.offset;
}

SafetensorsModel::SafetensorsModel(const std::string& path) {
  std::vector<std::string> shard_paths;
  if (fs::is_directory(path)) {
    const fs::path dir(path);
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(index)) {
      json j;
      try {
        j = json::parse(read_small_file(index.string(), "safetensors index"));
      } catch (const json::exception& e) {
        fail("{}: not valid JSON: {}", index.string(), e.what());
      }
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        fail("{}: missing object 'weight_map'", index.string());
      std::map<std::string, std::string> expected;  // tensor -> shard
      for (auto& [name, shard] : j["weight_map"].items()) {
        if (!shard.is_string()) fail("{}: weight_map['{}'] must be a file name", index.string(), name);
        const std::string s = shard.get<std::string>();
        if (s.find('/') != std::string::npos) fail("{}: weight_map['{}'] = '{}' leaves the directory", index.string(), name, s);
        expected[name] = s;
        if (std::find(shard_paths.begin(), shard_paths.end(), (dir / s).string()) == shard_paths.end())
          shard_paths.push_back((dir / s).string());
      }
      std::sort(shard_paths.begin(), shard_paths.end());
      for (auto& p : shard_paths) {
        if (!fs::is_regular_file(p)) fail("{}: shard {} is missing or not a regular file", index.string(), p);
        files_.push_back(std::make_unique<SafetensorsFile>(p));
      }
      for (auto& f : files_)
        for (auto& [name, t] : f->tensors()) {
          auto it = expected.find(name);
          if (it == expected.end() || (dir / it->second).string() != f->path())
            fail("{}: tensor '{}' is in {} but the index does not map it there", index.string(), name, f->path());
          if (!index_.emplace(name, &t).second) fail("{}: tensor '{}' appears in two shards", index.string(), name);
        }
      for (auto& [name, shard] : expected)
        if (!index_.count(name)) fail("{}: tensor '{}' is mapped to {} but that shard lacks it", index.string(), name, shard);
      return;
    }
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") shard_paths.push_back(e.path().string());
    std::sort(shard_paths.begin(), shard_paths.end());
    if (shard_paths.empty()) fail("{}: no .safetensors files and no model.safetensors.index.json", path);
  } else {
    shard_paths.push_back(path);
  }
  for (auto& p : shard_paths) {
    // Mapping a FIFO would block on open and a device would map garbage.
    if (!fs::is_regular_file(p)) fail("{}: not a regular file; expected a .safetensors file", p);
    files_.push_back(std::make_unique<SafetensorsFile>(p));
  }
  for (auto& f : files_)
    for (auto& [name, t] : f->tensors())
      if (!index_.emplace(name, &t).second) fail("{}: tensor '{}' appears in more than one file", path, name);
}

const TensorRef* TensorTable::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorRef& TensorTable::get(const std::string& name) const {
  const TensorRef* t = find(name);
  if (!t) fail("tensor '{}' not found in {}", name, describe());
  return *t;
}

uint64_t TensorTable::total_bytes() const {
  uint64_t n = 0;
  for (auto& [_, t] : index_) n += t->stored_bytes();
  return n;
}

}  // namespace moeflux
