#pragma once
// Pre-tokenizers of tokenizer.json ("pre_tokenizer" key): cut a normalized
// piece into words that the model encodes independently.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "text/tokenizer/json_reader.h"

namespace moeflux {

// Words as byte ranges of one buffer. Splitting only adds ranges; the
// pre-tokenizers that change text (Metaspace, ByteLevel's prefix space)
// rebuild the buffer.
struct Pieces {
  struct Span {
    uint32_t begin, end;
    bool first;  // starts at offset 0 of the original input (Metaspace "first")
  };
  std::string text;
  std::vector<Span> spans;
  // ByteLevel's byte->char mapping is deferred: while set, span text is raw
  // bytes that the model maps itself (cheaper than materialising the
  // mapped string). A later pre-tokenizer that needs the mapped text calls
  // materialize_byte_level().
  bool byte_level = false;

  void reset(std::string s, bool first) {
    text = std::move(s);
    spans.clear();
    if (!text.empty()) spans.push_back({0, uint32_t(text.size()), first});
    byte_level = false;
  }
  std::string_view view(const Span& s) const { return std::string_view(text).substr(s.begin, s.end - s.begin); }
  void materialize_byte_level();
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(Pieces& p) const = 0;
};

// HF SplitDelimiterBehavior.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Splits every span of p at its matches (matches[i]: sorted byte ranges into
// p.text inside span i), as HF's NormalizedString::split does; empty results
// are dropped, as HF's PreTokenizedString::split does.
void split_spans(Pieces& p, SplitBehavior behavior, bool invert,
                 const std::vector<std::vector<std::pair<uint32_t, uint32_t>>>& matches);

// nullptr for a JSON null. Supported types: Sequence, Split, ByteLevel,
// Digits, Metaspace, Whitespace, WhitespaceSplit. Others fail naming the type.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json::Value& v);

// The GPT-2 regex that ByteLevel uses when use_regex is true.
extern const char* const kGpt2Pattern;

}  // namespace moeflux
