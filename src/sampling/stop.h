// Stop conditions for streaming generation: stop token ids, stop strings and a
// token limit, applied to the text as it streams out.
//
// Text that could still turn out to be the start of a stop string is held
// back until the next pieces decide it; a stop string is never emitted, and
// neither is the text after it. Because stop strings and pieces are valid
// UTF-8, every split point is a character boundary, so each emitted chunk is
// valid UTF-8 as well.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moeflux {

struct StopConditions {
  std::vector<std::string> stop_strings;  // non-empty, valid UTF-8
  std::vector<int32_t> stop_tokens;       // e.g. EOS ids from config.json and tokenizer_config.json
  int max_tokens = -1;                    // -1 = no limit, else >= 1
};

class StopChecker {
 public:
  // Throws moeflux::Error for an empty or invalid-UTF-8 stop string or a
  // max_tokens outside {-1} ∪ [1, ∞).
  explicit StopChecker(StopConditions c);

  struct Step {
    std::string emit;    // text safe to show now
    bool stop = false;   // generation must end; emit is then the final text
    std::string reason;  // when stop: "stop_token", "stop_string" or "max_tokens"
  };

  // One generated token and its decoded text (already valid UTF-8; may be
  // empty while the detokenizer waits for the rest of a character). Checks,
  // in order: stop token (not emitted; held text is released), stop string
  // (text before it is emitted), max_tokens (counts every push, this token's
  // text is emitted). Pushing after a stop throws.
  Step push(int32_t token, std::string_view text_piece);

  // Flushes held-back text when generation ends for another reason (e.g. the
  // context is full). Empty after a stop, since the stop step emitted it.
  std::string finish();

  int tokens() const { return n_tokens_; }
  bool stopped() const { return stopped_; }
  const StopConditions& conditions() const { return c_; }

 private:
  Step stop_with(std::string emit, const char* reason);
  size_t held_suffix() const;  // longest suffix of pending_ that is a proper prefix of a stop string

  StopConditions c_;
  std::string pending_;  // text received but not yet emitted
  int n_tokens_ = 0;
  bool stopped_ = false;
};

}  // namespace moeflux
