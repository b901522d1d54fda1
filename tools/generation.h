// The generation loop shared by `run`, `chat` and `demo`: prefill a prompt,
// then sample, detokenize and stream text until a stop condition.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "moeflux/engine.h"
#include "sampling/sampler.h"
#include "sampling/stop.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux::cli {

struct GenerationStats {
  int prompt_tokens = 0, generated_tokens = 0;
  double prefill_s = 0, decode_s = 0;
  std::string stop_reason;  // "stop_token", "stop_string", "max_tokens", "context_full", "interrupted"
  double prefill_tok_s() const { return prefill_s > 0 ? prompt_tokens / prefill_s : 0; }
  double decode_tok_s() const { return decode_s > 0 && generated_tokens > 1 ? (generated_tokens - 1) / decode_s : 0; }
};

// Runs `prompt` (appended to what the session holds) and generates; `emit`
// receives text as soon as it is complete UTF-8 and cleared by the stop
// checker. `interrupt`, when set by another thread or a signal handler, ends
// generation after the current token. Returns the generated token ids in
// `out_tokens` when non-null.
GenerationStats generate_text(Session& session, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                              Sampler& sampler, const StopConditions& stop,
                              const std::function<void(const std::string&)>& emit,
                              const std::atomic<bool>* interrupt = nullptr, std::vector<int32_t>* out_tokens = nullptr);

}  // namespace moeflux::cli
