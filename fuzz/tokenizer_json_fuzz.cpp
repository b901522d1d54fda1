// libFuzzer target for tokenizer.json, which arrives untrusted with a
// downloaded model. The input is the file's bytes: it must load or throw
// moeflux::Error, and a loaded tokenizer must encode and decode a short
// mixed-script string, with and without special tokens, streaming too. No
// crash, sanitizer report, leak, hang past -timeout or allocation past
// -rss_limit_mb.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "moeflux/error.h"
#include "text/tokenizer/tokenizer.h"

using namespace moeflux;

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "tokenizer_json_fuzz: %s\n", what);
  std::abort();
}

void exercise(const Tokenizer& t) {
  static const std::string_view text = "Hello, world! <|im_start|>user 123 4567 \xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80 \xff tabs\t\n";
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = t.encode(text, special);
    (void)t.decode(ids, false);
    (void)t.decode(ids, true);
    StreamDecoder sd(t, !special);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    for (int32_t id : ids) {
      (void)t.token_text(id);
      (void)t.token_bytes(id);
      (void)t.is_special(id);
    }
  }
  std::vector<int32_t> odd = {-1, 0, 1, t.vocab_size() - 1, t.vocab_size(), INT32_MAX};
  (void)t.decode(odd, false);
  (void)t.bos_id();
  (void)t.eos_ids();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    Tokenizer t = Tokenizer::from_json(json);
    exercise(t);
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    bug("a std::exception escaped instead of moeflux::Error");
  }
  return 0;
}
