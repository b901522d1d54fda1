#include "generation.h"

#include "cli_util.h"
#include "core/error.h"

namespace moeflux::cli {

GenerationStats generate_text(Session& session, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                              Sampler& sampler, const StopConditions& stop,
                              const std::function<void(const std::string&)>& emit, const std::atomic<bool>* interrupt,
                              std::vector<int32_t>* out_tokens) {
  GenerationStats st;
  st.prompt_tokens = int(prompt.size());
  if (prompt.empty()) fail("the prompt is empty after tokenization");
  if (session.position() + int64_t(prompt.size()) >= session.max_positions())
    fail("the prompt is {} tokens but only {} of the context's {} positions are free", prompt.size(),
         session.max_positions() - session.position(), session.max_positions());
  StopChecker checker(stop);
  StreamDecoder detok(tok);
  const double t0 = now_seconds();
  auto logits = session.step(prompt);
  st.prefill_s = now_seconds() - t0;
  const double t1 = now_seconds();
  for (;;) {
    const int32_t next = sampler.sample(logits);
    sampler.accept(next);
    if (out_tokens) out_tokens->push_back(next);
    st.generated_tokens++;
    const auto step = checker.push(next, detok.push(next));
    if (!step.emit.empty()) emit(step.emit);
    if (step.stop) {
      st.stop_reason = step.reason;
      break;
    }
    if (interrupt && interrupt->load()) {
      st.stop_reason = "interrupted";
      break;
    }
    if (session.position() + 1 >= session.max_positions()) {
      st.stop_reason = "context_full";
      break;
    }
    logits = session.step(std::span<const int32_t>(&next, 1));
  }
  if (st.stop_reason != "stop_token" && st.stop_reason != "stop_string" && st.stop_reason != "max_tokens") {
    // Ended without a stop condition: show what the stop checker and the
    // detokenizer were still holding.
    const std::string tail = checker.finish() + detok.flush();
    if (!tail.empty()) emit(tail);
  }
  st.decode_s = now_seconds() - t1;
  return st;
}

}  // namespace moeflux::cli
