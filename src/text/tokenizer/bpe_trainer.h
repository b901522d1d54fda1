#pragma once
// A plain byte-level BPE trainer, used to build the demo tokenizer that
// `synth` ships with random-weight models. Small inputs only (a few KB):
// it recounts pairs after every merge, which is simple and deterministic.
#include <string>
#include <utility>
#include <vector>

namespace moeflux {

struct BpeTrainResult {
  // Merges in rank order, as GPT-2 alphabet strings (left, right); the
  // vocab strings use the same alphabet.
  std::vector<std::pair<std::string, std::string>> merges;
  // 256 byte tokens (in byte order) followed by the merged tokens (a merge
  // that spells an existing token reuses it, so there may be fewer).
  std::vector<std::string> vocab;
};

// Splits `text` into words with `split_pattern` (a PCRE2/Oniguruma regex,
// matches kept as words), maps bytes to GPT-2 characters and learns up to
// `max_merges` merges. Each step takes the most frequent adjacent pair;
// ties go to the pair whose (left, right) strings sort first, so the result
// does not depend on hash order. Stops early when no pair occurs twice.
BpeTrainResult train_byte_level_bpe(const std::string& text, const std::string& split_pattern, size_t max_merges);

}  // namespace moeflux
