#pragma once
// Normalizers of tokenizer.json ("normalizer" key): string -> string, run on
// every piece of the input that is not an added token.
#include <memory>
#include <string>

#include "text/tokenizer/json_reader.h"

namespace moeflux {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

// nullptr for a JSON null. Supported types: Sequence, NFC, NFD, NFKC, NFKD,
// Prepend, Append, Replace (String or Regex pattern), Strip. (Lowercase is
// left out on purpose: Rust's full case mapping and final-sigma rule differ
// from utf8proc's simple mapping, and no supported model uses it.)
// Anything else fails naming the type.
std::unique_ptr<Normalizer> make_normalizer(const json::Value& v);

}  // namespace moeflux
