// libFuzzer target for the GGUF parser. Any input must either parse or throw
// moeflux::Error: no crash, no out-of-bounds read (ASan), no UB (UBSan), no
// leak, no allocation beyond what the input's size justifies (libFuzzer's
// -rss_limit_mb / -malloc_limit_mb). When it parses, every tensor's bytes are
// touched (so a range outside the input trips ASan), the vocab reader and the
// getters run on whatever metadata came out, and the header is re-serialised
// by the writer and parsed again: it must read back identical.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "format/gguf/gguf_file.h"
#include "format/gguf/gguf_vocab.h"
#include "format/gguf/gguf_writer.h"
#include "moeflux/error.h"

using namespace moeflux;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "gguf_parse_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

void exercise_metadata(const GgufMetadata& m) {
  for (auto& [key, value] : m.entries()) {
    (void)gguf_value_summary(value);
    // Every getter either returns or throws Error; none may crash.
    try { (void)m.get_u32(key); } catch (const Error&) {}
    try { (void)m.get_i64(key); } catch (const Error&) {}
    try { (void)m.get_f32(key); } catch (const Error&) {}
    try { (void)m.get_str(key); } catch (const Error&) {}
    try { (void)m.get_array_of<std::string>(key); } catch (const Error&) {}
  }
  try {
    (void)read_gguf_vocab(m);
  } catch (const Error&) {
  }
}

// Writer round trip: what parsed must re-serialise (where the writer's rules,
// stricter only in the 63-byte tensor name limit, accept it) and parse back
// identical.
void round_trip(const GgufContents& c) {
  std::vector<GgufTensorDecl> decls;
  for (auto& t : c.tensors) decls.push_back({t.name, t.type, t.dims});
  std::vector<uint64_t> rel;
  std::string bytes;
  try {
    bytes = gguf_header_bytes(c.metadata, decls, "fuzz", &rel);
  } catch (const Error&) {
    for (auto& t : c.tensors) if (t.name.size() > 63) return;
    check(false, "writer refused a header the reader accepted");
  }
  for (size_t i = 0; i < c.tensors.size(); ++i) {
    bytes.resize(bytes.size() + (c.alignment - bytes.size() % c.alignment) % c.alignment, '\0');
    bytes.append(reinterpret_cast<const char*>(c.tensors[i].data), c.tensors[i].nbytes);
  }
  GgufContents back;
  try {
    back = parse_gguf({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, "fuzz-rt");
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    check(false, "reader refused what the writer wrote");
  }
  check(back.metadata.size() == c.metadata.size(), "metadata count");
  for (size_t i = 0; i < c.metadata.size(); ++i) {
    check(back.metadata.entries()[i].first == c.metadata.entries()[i].first, "metadata key");
    check(gguf_identical(back.metadata.entries()[i].second, c.metadata.entries()[i].second), "metadata value");
  }
  check(back.tensors.size() == c.tensors.size(), "tensor count");
  for (size_t i = 0; i < c.tensors.size(); ++i) {
    const GgufTensor &a = c.tensors[i], &b = back.tensors[i];
    check(a.name == b.name && a.type == b.type && a.dims == b.dims && a.nbytes == b.nbytes, "tensor info");
    check(b.offset - back.data_offset == rel[i], "tensor offset");
    check(std::memcmp(a.data, b.data, a.nbytes) == 0, "tensor bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  GgufContents c;
  try {
    c = parse_gguf({data, size}, "fuzz");
  } catch (const Error&) {
    return 0;
  }
  uint64_t sum = 0;
  for (auto& t : c.tensors) {
    check(t.data >= data && t.offset + t.nbytes <= size && t.data + t.nbytes <= data + size, "tensor in bounds");
    check(t.offset >= c.data_offset && (t.offset - c.data_offset) % c.alignment == 0, "aligned");
    if (t.nbytes) sum += t.data[0] + t.data[t.nbytes - 1];
  }
  (void)sum;
  exercise_metadata(c.metadata);
  round_trip(c);
  return 0;
}
