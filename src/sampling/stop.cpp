// Stop-condition matching over streamed text; see stop.h for the contract.
#include "sampling/stop.h"

#include <algorithm>

#include "core/error.h"

namespace moeflux {

namespace {

// Strict UTF-8 check (no overlongs, no surrogates, max U+10FFFF), so that a
// stop string's first byte is always a lead byte and matches start only at
// character boundaries.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t j = 1; j < len; ++j) {
      const auto c = static_cast<unsigned char>(s[i + j]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace

StopChecker::StopChecker(StopConditions c) : c_(std::move(c)) {
  for (size_t i = 0; i < c_.stop_strings.size(); ++i) {
    const std::string& s = c_.stop_strings[i];
    // An empty stop string would match before any text and end every generation.
    if (s.empty()) fail("stop: stop_strings[{}] is empty; stop strings must be non-empty", i);
    if (!valid_utf8(s)) fail("stop: stop_strings[{}] is not valid UTF-8", i);
  }
  if (c_.max_tokens == 0 || c_.max_tokens < -1)
    fail("stop: max_tokens is {}, must be -1 (no limit) or >= 1", c_.max_tokens);
}

StopChecker::Step StopChecker::stop_with(std::string emit, const char* reason) {
  stopped_ = true;
  pending_.clear();
  return Step{std::move(emit), true, reason};
}

size_t StopChecker::held_suffix() const {
  // Only suffixes shorter than the stop string can still grow into it (a full
  // match was already ruled out by the caller).
  size_t best = 0;
  for (const std::string& s : c_.stop_strings) {
    const size_t max_len = std::min(s.size() - 1, pending_.size());
    for (size_t len = max_len; len > best; --len) {
      if (std::string_view(pending_).substr(pending_.size() - len) == std::string_view(s).substr(0, len)) {
        best = len;
        break;
      }
    }
  }
  return best;
}

StopChecker::Step StopChecker::push(int32_t token, std::string_view text_piece) {
  if (stopped_) fail("StopChecker::push: generation already stopped");
  ++n_tokens_;

  // A stop token ends generation; its own text is not shown, but held text is
  // ordinary output now that no stop string can complete.
  if (std::find(c_.stop_tokens.begin(), c_.stop_tokens.end(), token) != c_.stop_tokens.end())
    return stop_with(std::move(pending_), "stop_token");

  pending_.append(text_piece);

  // Everything already emitted was proven not to start a stop string, so
  // searching the pending text suffices. Take the earliest match over all
  // stop strings: text up to it is the last output.
  size_t first = std::string::npos;
  for (const std::string& s : c_.stop_strings) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) return stop_with(pending_.substr(0, first), "stop_string");

  if (c_.max_tokens > 0 && n_tokens_ >= c_.max_tokens) return stop_with(std::move(pending_), "max_tokens");

  const size_t hold = held_suffix();
  Step step;
  step.emit = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return step;
}

std::string StopChecker::finish() {
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace moeflux
