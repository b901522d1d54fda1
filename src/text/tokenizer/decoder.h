#pragma once
// Decoders of tokenizer.json ("decoder" key): token strings -> text, as a
// chain over the list of tokens (HF's Decoder::decode_chain).
#include <memory>
#include <string>
#include <vector>

#include "text/tokenizer/json_reader.h"

namespace moeflux {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // True when this decoder (or one in a sequence) maps GPT-2 byte-level
  // characters back to bytes / turns <0xXX> tokens into bytes; the streaming
  // decoder uses this to see the bytes behind each token.
  virtual bool has_byte_level() const { return false; }
  virtual bool has_byte_fallback() const { return false; }
};

// nullptr for a JSON null. Supported types: Sequence, ByteLevel, Metaspace,
// ByteFallback, Fuse, Strip, Replace. Others fail naming the type.
std::unique_ptr<Decoder> make_decoder(const json::Value& v);

// decode_chain then concatenation (HF Decoder::decode).
std::string run_decoder(const Decoder& d, std::vector<std::string> tokens);

}  // namespace moeflux
