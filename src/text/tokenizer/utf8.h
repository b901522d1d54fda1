#pragma once
// UTF-8 helpers shared by the tokenizer pieces: decoding, validation with
// replacement, the GPT-2 byte<->unicode alphabet, and the few Unicode
// predicates that Hugging Face `tokenizers` takes from Rust's `char`.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moeflux::utf8 {

// Length of the UTF-8 sequence that starts with lead byte `b` (1 for
// continuation or invalid bytes, so that loops always advance).
inline int seq_len(uint8_t b) {
  if (b < 0x80) return 1;
  if (b < 0xE0) return b < 0xC0 ? 1 : 2;
  if (b < 0xF0) return 3;
  return b < 0xF8 ? 4 : 1;
}

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i.
inline char32_t next(std::string_view s, size_t& i) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  uint8_t b = p[0];
  if (b < 0x80) { i += 1; return b; }
  if (b < 0xE0) { i += 2; return (char32_t(b & 0x1F) << 6) | (p[1] & 0x3F); }
  if (b < 0xF0) {
    i += 3;
    return (char32_t(b & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  i += 4;
  return (char32_t(b & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) |
         (p[3] & 0x3F);
}

// Code point that ends at s[i] (exclusive); moves i back to its start.
inline char32_t prev(std::string_view s, size_t& i) {
  size_t j = i - 1;
  while (j > 0 && (uint8_t(s[j]) & 0xC0) == 0x80) --j;
  size_t k = j;
  char32_t c = next(s, k);
  i = j;
  return c;
}

void append(std::string& out, char32_t cp);

// Length of the longest valid UTF-8 prefix of s.
size_t valid_prefix(std::string_view s);

// Returns s with every maximal ill-formed subsequence replaced by U+FFFD
// (Unicode's "maximal subpart" practice, which is what Python's
// bytes.decode("utf-8", "replace") and Rust's from_utf8_lossy do).
std::string to_valid_lossy(std::string_view s);

// Number of bytes at the end of s that form a proper prefix of a valid UTF-8
// sequence (0..3): a streaming decoder must hold these back, because the
// next bytes may complete the character.
size_t incomplete_tail(std::string_view s);

// GPT-2 byte-level alphabet: byte b <-> printable code point.
char32_t byte_to_char(uint8_t b);
// -1 when cp is not in the alphabet.
int char_to_byte(char32_t cp);
// Maps every byte of s to its alphabet character (UTF-8 encoded).
void bytes_to_chars(std::string_view s, std::string& out);
// Inverse of bytes_to_chars; false (out unspecified) if some character is
// not in the alphabet.
bool chars_to_bytes(std::string_view s, std::string& out);

// Unicode predicates with Rust `char` semantics (tokenizers is Rust).
bool is_whitespace(char32_t cp);    // White_Space property
bool is_numeric(char32_t cp);       // general category Nd, Nl or No
bool is_alphanumeric(char32_t cp);  // Alphabetic or numeric
bool is_punctuation(char32_t cp);   // general category P*

}  // namespace moeflux::utf8
