// Python str semantics on UTF-8 bytes: templates index, slice, strip and
// split by code point, and Python's idea of whitespace is Unicode's.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moeflux::jinja::text {

std::vector<char32_t> decode(std::string_view s);  // invalid bytes map to U+FFFD
void append_utf8(std::string& out, char32_t c);
std::string encode(const std::vector<char32_t>& cps);
size_t length(std::string_view s);  // in code points
bool is_ascii(std::string_view s);

// str.isspace() for one code point.
bool is_space(char32_t c);
// str.strip()/lstrip()/rstrip(); chars == nullopt strips whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep, maxsplit) / str.rsplit; sep == nullopt splits on whitespace runs.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
// s.find(sub, pos) in linear time: glibc's memmem (two-way), where
// std::string_view::find is O(len(s) * len(sub)) on inputs a template can build.
size_t search_from(std::string_view s, std::string_view sub, size_t pos);
std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
int64_t count(std::string_view s, std::string_view sub);
// str.find in code points, -1 when absent.
int64_t find(std::string_view s, std::string_view sub, bool reverse);

// Case mapping and categories as Python's str methods apply them, for the
// scripts listed in jinja_text.cpp (see there).
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);
bool is_upper(char32_t c);
bool is_lower(char32_t c);
bool is_alpha(char32_t c);
bool is_alnum(char32_t c);  // str.isalnum(); with '_' it is regex \w
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string capitalize(std::string_view s);  // str.capitalize()
std::string title(std::string_view s);       // str.title()

// Python slice semantics on a sequence of length n: fills the indices taken.
std::vector<int64_t> slice_indices(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop,
                                   std::optional<int64_t> step);

}  // namespace moeflux::jinja::text
