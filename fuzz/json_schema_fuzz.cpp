// libFuzzer target for constrained JSON output. The input is a JSON schema
// and a document, split at the first NUL byte. The schema must compile or
// throw moeflux::Error (bad input), nothing else; the document is fed byte
// by byte, and whenever the matcher says the bytes so far are a complete
// document, they must parse as JSON (the promise of constrained output).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "moeflux/error.h"
#include "sampling/json_grammar.h"
#include "sampling/json_matcher.h"

using namespace moeflux;
using namespace moeflux::json_constraint;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t cut = in.find('\0');
  const std::string_view schema = in.substr(0, cut);
  const std::string_view doc = cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1);
  try {
    const Grammar g = Grammar::from_schema_text(schema);
    Matcher m(g);
    State s = m.start(), next;
    for (size_t i = 0; i < doc.size(); ++i) {
      if (!m.step(s, uint8_t(doc[i]), next)) break;
      s.swap(next);
      if (m.complete(s) && !nlohmann::json::accept(doc.substr(0, i + 1))) {
        std::fprintf(stderr, "json_schema_fuzz: the matcher completed a document that does not parse\n");
        std::abort();
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
