// The token-level generation loop shared by the CLI (run, chat, demo) and
// the server: prefill a prompt, then sample, detokenize and stop. Hooks see
// every token (with its log-probabilities when asked) and the text as soon
// as it is complete UTF-8 and cleared by the stop checker; a cancel hook
// (Ctrl-C, a client that went away) ends generation after the current token.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "moeflux/engine.h"
#include "sampling/sampler.h"
#include "sampling/stop.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux {

// One generated token: its log-probability under the model's distribution
// (log-softmax of the raw logits, before bias, penalties and temperature,
// as OpenAI reports them) and the most likely alternatives.
struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // best first
};

// Restricts which tokens may come next (constrained output, such as a JSON
// schema): apply() sets the logits of every token that may not follow to
// -inf before sampling; accept() is told each token drawn.
class LogitConstraint {
 public:
  virtual ~LogitConstraint() = default;
  virtual void apply(std::span<float> logits) = 0;
  virtual void accept(int32_t token) = 0;
};

struct GenerationHooks {
  std::function<void(const std::string&)> on_text;       // text ready to show
  std::function<void(const TokenLogprob&)> on_token;     // every sampled token (logprobs filled when asked)
  std::function<bool()> cancelled;                       // polled after each token
  int top_logprobs = -1;                                 // -1: no logprobs; 0..: alternatives per token
  // Masks the logits before each draw (logprobs still report the model's
  // own distribution); null: free text.
  LogitConstraint* constraint = nullptr;
  // Runs each decode step (one token); null: session.step. The server
  // passes its DecodeBatcher's, so concurrent requests share passes.
  std::function<std::span<const float>(Session&, int32_t)> decode_step;
};

struct GenerationStats {
  int prompt_tokens = 0, generated_tokens = 0;
  double prefill_s = 0, decode_s = 0;
  // "stop_token", "stop_string", "max_tokens", "context_full", "interrupted"
  std::string stop_reason;
  std::vector<int32_t> tokens;  // generated ids (the stop token included)
  double prefill_tok_s() const { return prefill_s > 0 ? prompt_tokens / prefill_s : 0; }
  double decode_tok_s() const { return decode_s > 0 && generated_tokens > 1 ? (generated_tokens - 1) / decode_s : 0; }
};

// Runs `prompt` (appended to what the session holds) and generates. The
// session then holds the prompt and every generated token but the last
// (whose logits were never needed). Throws Error from the engine (the
// session is left as the failed step found it) or for a prompt that does
// not fit the context.
GenerationStats generate(Session& session, const Tokenizer& tok, std::span<const int32_t> prompt, Sampler& sampler,
                         const StopConditions& stop, const GenerationHooks& hooks);

// log-softmax of `logits` at `id`, and the `top` most likely ids (ties to
// the lower id).
TokenLogprob token_logprob(std::span<const float> logits, int32_t id, int top);

}  // namespace moeflux
