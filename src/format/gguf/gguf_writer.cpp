#include "format/gguf/gguf_writer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"
#include "format/gguf/gguf_file.h"

namespace moeflux {

static_assert(std::endian::native == std::endian::little, "the GGUF writer stores values in host byte order");

namespace {

// llama.cpp keeps names in char[GGML_MAX_NAME = 64] with the terminator: 63 bytes at most.
constexpr size_t kLlamaCppMaxName = 63;

template <typename T>
void put_raw(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put_raw<uint64_t>(out, s.size());
  out.append(s);
}

void put_array_body(std::string& out, const GgufArray& a, const std::string& path, std::string_view key,
                    uint32_t depth) {
  if (depth >= kGgufMaxArrayNesting)
    fail("{}: metadata key '{}': arrays nested deeper than {} levels", path, key, kGgufMaxArrayNesting);
  put_raw<uint32_t>(out, uint32_t(a.elem_type()));
  put_raw<uint64_t>(out, a.size());
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::vector<std::string>>) {
          for (auto& s : v) put_string(out, s);
        } else if constexpr (std::is_same_v<V, std::vector<GgufArray>>) {
          for (auto& x : v) put_array_body(out, x, path, key, depth + 1);
        } else if constexpr (std::is_same_v<V, std::vector<bool>>) {
          for (bool b : v) out.push_back(char(b ? 1 : 0));
        } else {
          out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(typename V::value_type));
        }
      },
      a.data);
}

void put_value(std::string& out, const GgufValue& v, const std::string& path, std::string_view key) {
  put_raw<uint32_t>(out, uint32_t(v.type()));
  std::visit(
      [&](const auto& x) {
        using V = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<V, std::string>) {
          put_string(out, x);
        } else if constexpr (std::is_same_v<V, GgufArray>) {
          put_array_body(out, x, path, key, 0);
        } else if constexpr (std::is_same_v<V, bool>) {
          out.push_back(char(x ? 1 : 0));
        } else {
          put_raw<V>(out, x);
        }
      },
      v.data);
}

uint64_t pad_to(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }

uint64_t alignment_of(const GgufMetadata& m, const std::string& path) {
  const GgufValue* a = m.find("general.alignment");
  if (!a) return kGgufDefaultAlignment;
  const uint32_t* al = std::get_if<uint32_t>(&a->data);
  if (!al) fail("{}: metadata key 'general.alignment' must be uint32, found {}", path, gguf_type_name(a->type()));
  if (*al == 0 || (*al & (*al - 1)) != 0)
    fail("{}: metadata key 'general.alignment' = {} is not a non-zero power of two", path, *al);
  return *al;
}

uint64_t checked_nbytes(const GgufTensorDecl& t, const std::string& path) {
  const auto info = ggml_type_info(uint32_t(t.type));
  if (!info) fail("{}: tensor '{}': unknown ggml type id {}", path, t.name, uint32_t(t.type));
  if (t.dims.size() > kGgufMaxDims) fail("{}: tensor '{}': {} dims, at most {}", path, t.name, t.dims.size(), kGgufMaxDims);
  unsigned __int128 elems = 1;
  for (uint64_t d : t.dims) {
    if (d == 0) fail("{}: tensor '{}': shape [{}] has a zero dimension", path, t.name, fmt::join(t.dims, ", "));
    elems *= d;
    if (elems > uint64_t(INT64_MAX)) fail("{}: tensor '{}': shape [{}] overflows", path, t.name, fmt::join(t.dims, ", "));
  }
  const uint64_t ne0 = t.dims.empty() ? 1 : t.dims[0];
  if (ne0 % info->block != 0)
    fail("{}: tensor '{}': row length {} is not a multiple of the {} block size {}", path, t.name, ne0, info->name,
         info->block);
  return uint64_t(elems) / info->block * info->type_size;
}

}  // namespace

uint64_t GgufTensorDecl::nbytes() const { return checked_nbytes(*this, "gguf"); }

std::string gguf_header_bytes(const GgufMetadata& metadata, const std::vector<GgufTensorDecl>& tensors,
                              const std::string& path, std::vector<uint64_t>* rel_offsets) {
  const uint64_t align = alignment_of(metadata, path);
  std::string out;
  put_raw<uint32_t>(out, kGgufMagic);
  put_raw<uint32_t>(out, 3);
  put_raw<uint64_t>(out, tensors.size());
  put_raw<uint64_t>(out, metadata.size());
  for (auto& [key, value] : metadata.entries()) {
    if (key.empty()) fail("{}: metadata key is empty", path);
    if (key.size() > kGgufMaxKeyLength) fail("{}: metadata key '{}...' is longer than {} bytes", path, key.substr(0, 40), kGgufMaxKeyLength);
    put_string(out, key);
    put_value(out, value, path, key);
  }
  std::set<std::string_view> names;
  uint64_t off = 0;
  if (rel_offsets) rel_offsets->clear();
  for (auto& t : tensors) {
    if (t.name.empty()) fail("{}: a tensor has an empty name", path);
    if (t.name.size() > kLlamaCppMaxName)
      fail("{}: tensor '{}': name is {} bytes; llama.cpp accepts at most {}", path, t.name, t.name.size(),
           kLlamaCppMaxName);
    if (!names.insert(t.name).second) fail("{}: tensor '{}' is declared twice", path, t.name);
    const uint64_t nb = checked_nbytes(t, path);
    put_string(out, t.name);
    put_raw<uint32_t>(out, uint32_t(t.dims.size()));
    for (uint64_t d : t.dims) put_raw<uint64_t>(out, d);
    put_raw<uint32_t>(out, uint32_t(t.type));
    put_raw<uint64_t>(out, off);
    if (rel_offsets) rel_offsets->push_back(off);
    if (nb > UINT64_MAX - align - off) fail("{}: tensor '{}': data section exceeds 2^64 bytes", path, t.name);
    off += pad_to(nb, align);
  }
  out.append(size_t(pad_to(out.size(), align) - out.size()), '\0');
  return out;
}

GgufWriter::GgufWriter(std::string path, const GgufMetadata& metadata, std::vector<GgufTensorDecl> tensors,
                       Replace replace)
    : path_(std::move(path)), tensors_(std::move(tensors)) {
  const std::string header = gguf_header_bytes(metadata, tensors_, path_);
  alignment_ = alignment_of(metadata, path_);
  data_offset_ = header.size();
  for (auto& t : tensors_) sizes_.push_back(checked_nbytes(t, path_));
  out_ = std::make_unique<OutputFile>(path_, replace);
  put(header.data(), header.size());
}

void GgufWriter::put(const void* p, size_t n) { out_->write(p, n); }

void GgufWriter::pad_current() {
  static const char zeros[4096] = {};
  uint64_t pad = pad_to(sizes_[current_], alignment_) - sizes_[current_];
  while (pad) {
    const size_t n = size_t(std::min<uint64_t>(pad, sizeof(zeros)));
    put(zeros, n);
    pad -= n;
  }
  ++current_;
  current_done_ = 0;
}

void GgufWriter::write(std::span<const uint8_t> bytes) {
  if (!out_) fail("{}: write after finish", path_);
  while (!bytes.empty()) {
    if (current_ >= tensors_.size())
      fail("{}: {} bytes written past the last declared tensor", path_, bytes.size());
    const uint64_t room = sizes_[current_] - current_done_;
    const size_t n = size_t(std::min<uint64_t>(room, bytes.size()));
    put(bytes.data(), n);
    current_done_ += n;
    bytes = bytes.subspan(n);
    if (current_done_ == sizes_[current_]) pad_current();
  }
}

void GgufWriter::write_tensor(std::string_view name, std::span<const uint8_t> bytes) {
  if (current_ >= tensors_.size()) fail("{}: tensor '{}' written after all declared tensors", path_, name);
  const GgufTensorDecl& t = tensors_[current_];
  if (t.name != name || current_done_ != 0)
    fail("{}: tensor '{}' written where '{}' is next in declaration order", path_, name, t.name);
  if (bytes.size() != sizes_[current_])
    fail("{}: tensor '{}': {} bytes given, its shape [{}] as {} takes {}", path_, name, bytes.size(),
         fmt::join(t.dims, ", "), ggml_type_info(uint32_t(t.type))->name, sizes_[current_]);
  write(bytes);
}

void GgufWriter::finish() {
  if (!out_) fail("{}: finish called twice", path_);
  // A zero-size tensor cannot exist (dims are positive), so every tensor left is unwritten.
  if (current_ != tensors_.size())
    fail("{}: tensor '{}' has {} of {} bytes written; {} declared tensors unfinished", path_,
         tensors_[current_].name, current_done_, sizes_[current_], tensors_.size() - current_);
  out_->commit();
  out_.reset();
}

}  // namespace moeflux
