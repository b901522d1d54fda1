#include "format/gguf/gguf_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace moeflux {

static_assert(std::endian::native == std::endian::little, "the GGUF reader copies little-endian fields as they are");

std::string GgufTensor::shape_str() const { return fmt::format("[{}]", fmt::join(dims, ", ")); }

const GgufTensor* GgufContents::find_tensor(std::string_view name) const {
  auto it = tensor_index.find(name);
  return it == tensor_index.end() ? nullptr : &tensors[it->second];
}

const GgufTensor& GgufContents::tensor(std::string_view name) const {
  const GgufTensor* t = find_tensor(name);
  if (!t) fail("{}: tensor '{}' not found ({} tensors in the file)", path, name, tensors.size());
  return *t;
}

namespace {

// Smallest encodings, used to bound counts by the bytes left: a count that
// could not fit in the rest of the file is refused before anything is
// allocated for it.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;          // key length, 1-byte key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;  // name length, 1-byte name, n_dims, type, offset
constexpr uint64_t kMinArrayBytes = 4 + 8;                // element type, count

// What a field belongs to, for messages: "metadata key 'general.name'".
struct Where {
  std::string_view what;
  std::string_view name;
};

class Cursor {
 public:
  Cursor(std::span<const uint8_t> b, const std::string& path) : p_(b.data()), size_(b.size()), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  template <typename... Args>
  [[noreturn]] void fail_at(uint64_t off, Where w, fmt::format_string<Args...> f, Args&&... args) const {
    std::string ctx = w.name.empty() && w.what.empty()
                          ? std::string()
                          : (w.name.empty() ? fmt::format("{}: ", w.what) : fmt::format("{} '{}': ", w.what, w.name));
    fail("{}: byte {}: {}{}", path_, off, ctx, fmt::format(f, std::forward<Args>(args)...));
  }

  void need(uint64_t n, Where w, std::string_view field) const {
    if (n > left())
      fail_at(pos_, w, "{} needs {} bytes but only {} remain in the file ({} bytes): truncated?", field, n, left(),
              size_);
  }

  template <typename T>
  T read(Where w, std::string_view field) {
    need(sizeof(T), w, field);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // A u64 length then that many bytes; the length is checked against the
  // bytes left and `max_len` before the string is built.
  std::string read_string(Where w, std::string_view field, uint64_t max_len) {
    const uint64_t at = pos_;
    const uint64_t n = read<uint64_t>(w, field);
    if (n > max_len) fail_at(at, w, "{} length {} exceeds the limit of {} bytes", field, n, max_len);
    if (n > left())
      fail_at(at, w, "{} length {} runs past the end of the file ({} bytes left): truncated or corrupt", field, n,
              left());
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += n;
    return s;
  }

  // A count of items at least `min_item` bytes each: refuse counts the
  // remaining bytes cannot hold.
  void check_count(uint64_t at, uint64_t count, uint64_t min_item, Where w, std::string_view field) const {
    if (count > left() / min_item)
      fail_at(at, w, "{} {} is implausible: the {} bytes left in the file hold at most {}", field, count, left(),
              left() / min_item);
  }

  const uint8_t* base() const { return p_; }
  const uint8_t* here() const { return p_ + pos_; }
  void skip(uint64_t n) {
    need(n, {}, "skip");
    pos_ += n;
  }

 private:
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

GgufType read_value_type(Cursor& c, Where w, std::string_view field) {
  const uint64_t at = c.pos();
  const uint32_t t = c.read<uint32_t>(w, field);
  if (t >= kGgufTypeCount) c.fail_at(at, w, "unknown {} {} (known: 0..{})", field, t, kGgufTypeCount - 1);
  return GgufType(t);
}

bool read_bool(Cursor& c, Where w) {
  const uint64_t at = c.pos();
  const uint8_t b = c.read<uint8_t>(w, "bool value");
  if (b > 1) c.fail_at(at, w, "bool value {} is neither 0 nor 1", b);
  return b == 1;
}

GgufArray read_array(Cursor& c, Where w, uint32_t depth);

GgufValue read_value(Cursor& c, GgufType t, Where w, uint32_t depth);

GgufArray read_array(Cursor& c, Where w, uint32_t depth) {
  const uint64_t at = c.pos();
  if (depth >= kGgufMaxArrayNesting)
    c.fail_at(at, w, "arrays nested deeper than {} levels", kGgufMaxArrayNesting);
  const GgufType et = read_value_type(c, w, "array element type");
  const uint64_t count_at = c.pos();
  const uint64_t n = c.read<uint64_t>(w, "array length");
  const uint32_t fixed = gguf_type_size(et);
  c.check_count(count_at, n, fixed ? fixed : (et == GgufType::Str ? 8 : kMinArrayBytes), w,
                fmt::format("array of {} length", gguf_type_name(et)));
  GgufArray a;
  auto fixed_vec = [&](auto tag) {
    using T = decltype(tag);
    c.need(n * sizeof(T), w, "array data");  // n * sizeof(T) <= bytes left: no overflow
    std::vector<T> v(static_cast<size_t>(n));
    if (n) std::memcpy(v.data(), c.here(), size_t(n) * sizeof(T));
    c.skip(n * sizeof(T));
    a.data = std::move(v);
  };
  switch (et) {
    case GgufType::U8: fixed_vec(uint8_t{}); break;
    case GgufType::I8: fixed_vec(int8_t{}); break;
    case GgufType::U16: fixed_vec(uint16_t{}); break;
    case GgufType::I16: fixed_vec(int16_t{}); break;
    case GgufType::U32: fixed_vec(uint32_t{}); break;
    case GgufType::I32: fixed_vec(int32_t{}); break;
    case GgufType::F32: fixed_vec(float{}); break;
    case GgufType::U64: fixed_vec(uint64_t{}); break;
    case GgufType::I64: fixed_vec(int64_t{}); break;
    case GgufType::F64: fixed_vec(double{}); break;
    case GgufType::Bool: {
      std::vector<bool> v(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) v[size_t(i)] = read_bool(c, w);
      a.data = std::move(v);
      break;
    }
    case GgufType::Str: {
      std::vector<std::string> v;
      v.reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) v.push_back(c.read_string(w, "string element", UINT64_MAX));
      a.data = std::move(v);
      break;
    }
    case GgufType::Array: {
      std::vector<GgufArray> v;
      v.reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) v.push_back(read_array(c, w, depth + 1));
      a.data = std::move(v);
      break;
    }
  }
  return a;
}

GgufValue read_value(Cursor& c, GgufType t, Where w, uint32_t depth) {
  switch (t) {
    case GgufType::U8: return {c.read<uint8_t>(w, "uint8 value")};
    case GgufType::I8: return {c.read<int8_t>(w, "int8 value")};
    case GgufType::U16: return {c.read<uint16_t>(w, "uint16 value")};
    case GgufType::I16: return {c.read<int16_t>(w, "int16 value")};
    case GgufType::U32: return {c.read<uint32_t>(w, "uint32 value")};
    case GgufType::I32: return {c.read<int32_t>(w, "int32 value")};
    case GgufType::F32: return {c.read<float>(w, "float32 value")};
    case GgufType::Bool: return {read_bool(c, w)};
    case GgufType::Str: return {c.read_string(w, "string value", UINT64_MAX)};
    case GgufType::Array: return {read_array(c, w, depth)};
    case GgufType::U64: return {c.read<uint64_t>(w, "uint64 value")};
    case GgufType::I64: return {c.read<int64_t>(w, "int64 value")};
    case GgufType::F64: return {c.read<double>(w, "float64 value")};
  }
  c.fail_at(c.pos(), w, "unknown value type {}", uint32_t(t));  // unreachable: types were checked
}

// Header fields before the metadata: magic, version, counts.
uint32_t read_version(Cursor& c, const std::string& path, uint64_t size) {
  if (size < 4) fail("{}: not a GGUF file: {} bytes, shorter than the 4-byte magic", path, size);
  const uint32_t magic = c.read<uint32_t>({}, "magic");
  if (magic != kGgufMagic) {
    const uint8_t* m = c.base();
    fail("{}: not a GGUF file: magic bytes {:02x} {:02x} {:02x} {:02x}, expected 47 47 55 46 (\"GGUF\")", path, m[0],
         m[1], m[2], m[3]);
  }
  const uint32_t version = c.read<uint32_t>({}, "version");
  if (version == 1)
    fail("{}: byte 4: GGUF version 1 is not supported (it used 32-bit counts); versions 2 and 3 are — re-convert "
         "the file with a current llama.cpp",
         path);
  if (version == 2 || version == 3) return version;
  const uint32_t swapped = __builtin_bswap32(version);
  if ((version & 0xFFFF) == 0 && swapped >= 1 && swapped <= 3)
    fail("{}: byte 4: big-endian GGUF (version {} read byte-swapped) is not supported; only little-endian files are",
         path, swapped);
  fail("{}: byte 4: unknown GGUF version {} (supported: 2, 3)", path, version);
}

}  // namespace

GgufContents parse_gguf(std::span<const uint8_t> bytes, const std::string& path) {
  GgufContents out;
  out.path = path;
  out.file_size = bytes.size();
  out.metadata = GgufMetadata(path);
  Cursor c(bytes, path);
  out.version = read_version(c, path, bytes.size());

  const uint64_t n_tensors_at = c.pos();
  const uint64_t n_tensors = c.read<uint64_t>({}, "tensor count");
  const uint64_t n_kv_at = c.pos();
  const uint64_t n_kv = c.read<uint64_t>({}, "metadata count");
  c.check_count(n_kv_at, n_kv, kMinKvBytes, {}, "metadata count");
  // Tensor infos follow the metadata, so each metadata entry takes bytes away from them too.
  if (n_tensors > (c.left() - n_kv * kMinKvBytes) / kMinTensorInfoBytes)
    c.fail_at(n_tensors_at, {}, "tensor count {} is implausible: the {} bytes left in the file hold at most {}",
              n_tensors, c.left(), (c.left() - n_kv * kMinKvBytes) / kMinTensorInfoBytes);

  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t key_at = c.pos();
    std::string key = c.read_string({"metadata entry", ""}, fmt::format("key of metadata entry {}", i),
                                    kGgufMaxKeyLength);
    if (key.empty()) c.fail_at(key_at, {}, "metadata entry {} has an empty key", i);
    const Where w{"metadata key", key};
    if (out.metadata.has(key)) c.fail_at(key_at, w, "duplicate key");
    const GgufType t = read_value_type(c, w, "value type");
    GgufValue v = read_value(c, t, w, 0);
    out.metadata.add(std::move(key), std::move(v));
  }

  if (const GgufValue* a = out.metadata.find("general.alignment")) {
    const uint32_t* al = std::get_if<uint32_t>(&a->data);
    if (!al)
      fail("{}: metadata key 'general.alignment' must be uint32, found {}", path, gguf_type_name(a->type()));
    if (*al == 0 || (*al & (*al - 1)) != 0)
      fail("{}: metadata key 'general.alignment' = {} is not a non-zero power of two", path, *al);
    out.alignment = *al;
  }

  std::vector<uint64_t> info_at(size_t(n_tensors), 0);  // n_tensors was bounded by the bytes left
  std::vector<uint64_t> rel_offset(size_t(n_tensors), 0);
  out.tensors.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const uint64_t at = c.pos();
    info_at[size_t(i)] = at;
    GgufTensor t;
    t.name = c.read_string({"tensor info", ""}, fmt::format("name of tensor {}", i), kGgufMaxTensorName);
    if (t.name.empty()) c.fail_at(at, {}, "tensor {} has an empty name", i);
    const Where w{"tensor", t.name};
    if (out.tensor_index.count(t.name)) c.fail_at(at, w, "duplicate tensor name");
    const uint64_t nd_at = c.pos();
    const uint32_t n_dims = c.read<uint32_t>(w, "n_dims");
    if (n_dims > kGgufMaxDims) c.fail_at(nd_at, w, "n_dims {} exceeds {}", n_dims, kGgufMaxDims);
    unsigned __int128 elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t d_at = c.pos();
      const uint64_t ne = c.read<uint64_t>(w, "dimension");
      if (ne == 0) c.fail_at(d_at, w, "dimension {} is 0", d);
      elems *= ne;
      if (elems > uint64_t(std::numeric_limits<int64_t>::max()))
        c.fail_at(d_at, w, "dimensions {}{}{} overflow: the element count exceeds 2^63-1",
                  fmt::join(t.dims, ", "), t.dims.empty() ? "" : ", ", ne);
      t.dims.push_back(ne);
    }
    t.n_elements = uint64_t(elems);
    const uint64_t type_at = c.pos();
    const uint32_t type_id = c.read<uint32_t>(w, "type");
    const auto info = ggml_type_info(type_id);
    if (!info) c.fail_at(type_at, w, "unknown or removed ggml type id {}", type_id);
    t.type = info->type;
    // ggml quantizes rows independently: the row (ne[0]) must be whole blocks.
    if (t.ne(0) % info->block != 0)
      c.fail_at(type_at, w, "row length ne[0] = {} is not a multiple of the {} block size {}", t.ne(0), info->name,
                info->block);
    // Elements fit in 63 bits but bytes may not (F64: 8 bytes each).
    const unsigned __int128 nbytes = (unsigned __int128)(t.n_elements / info->block) * info->type_size;
    if (nbytes > uint64_t(std::numeric_limits<int64_t>::max()))
      c.fail_at(type_at, w, "{} {} takes more than 2^63-1 bytes", info->name, t.shape_str());
    t.nbytes = uint64_t(nbytes);
    rel_offset[size_t(i)] = c.read<uint64_t>(w, "data offset");
    out.tensor_index.emplace(t.name, out.tensors.size());
    out.tensors.push_back(std::move(t));
  }

  const uint64_t end_of_infos = c.pos();
  out.data_offset = (end_of_infos + out.alignment - 1) / out.alignment * out.alignment;
  const uint64_t size = bytes.size();
  for (size_t i = 0; i < out.tensors.size(); ++i) {
    GgufTensor& t = out.tensors[i];
    const uint64_t rel = rel_offset[i];
    // The offset field is the last 8 bytes of the tensor's info record.
    const uint64_t field_at = (i + 1 < out.tensors.size() ? info_at[i + 1] : end_of_infos) - 8;
    const Where w{"tensor", t.name};
    if (rel % out.alignment != 0)
      c.fail_at(field_at, w, "data offset {} is not a multiple of the alignment {}", rel, out.alignment);
    if (out.data_offset > size || rel > size - out.data_offset || t.nbytes > size - out.data_offset - rel) {
      const uint64_t rel_end = rel > UINT64_MAX - t.nbytes ? UINT64_MAX : rel + t.nbytes;
      c.fail_at(field_at, w,
                "{} {} needs bytes [{}, {}) of the data section at {}, but the file ends at {}: truncated or corrupt",
                ggml_type_info(uint32_t(t.type))->name, t.shape_str(), rel, rel_end, out.data_offset, size);
    }
    t.offset = out.data_offset + rel;
    t.data = bytes.data() + t.offset;
  }

  std::vector<const GgufTensor*> by_offset;
  by_offset.reserve(out.tensors.size());
  for (auto& t : out.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->offset != b->offset ? a->offset < b->offset : a->name < b->name; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor* a = by_offset[i - 1];
    const GgufTensor* b = by_offset[i];
    if (b->offset < a->offset + a->nbytes)
      fail("{}: tensors '{}' (bytes {}..{}) and '{}' (bytes {}..{}) overlap", path, a->name, a->offset,
           a->offset + a->nbytes, b->name, b->offset, b->offset + b->nbytes);
  }
  return out;
}

GgufFile::GgufFile(const std::string& path) : map_(path) { c_ = parse_gguf(map_.bytes(), path); }

}  // namespace moeflux
