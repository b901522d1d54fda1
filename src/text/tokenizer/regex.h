#pragma once
// PCRE2 (UTF + UCP, JIT when available) standing in for the Oniguruma
// regexes that Hugging Face `tokenizers` compiles from tokenizer.json.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moeflux {

class Regex {
 public:
  // Throws moeflux::Error (with PCRE2's message and offset) on a bad pattern.
  explicit Regex(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends every non-overlapping match in s (valid UTF-8) as byte ranges
  // [begin, end), left to right, with Oniguruma's find_iter rules: an empty
  // match is reported and the search resumes one character later.
  void find_all(std::string_view s, std::vector<std::pair<uint32_t, uint32_t>>& out) const;

  const std::string& pattern() const { return pattern_; }

  // The Oniguruma -> PCRE2 rewrite applied before compiling (public for tests).
  static std::string translate(std::string_view onig_pattern);

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace moeflux
