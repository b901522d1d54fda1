#include "generation.h"

namespace moeflux::cli {

GenerationStats generate_text(Session& session, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                              Sampler& sampler, const StopConditions& stop,
                              const std::function<void(const std::string&)>& emit, const std::atomic<bool>* interrupt,
                              std::vector<int32_t>* out_tokens) {
  GenerationHooks hooks;
  hooks.on_text = emit;
  if (interrupt) hooks.cancelled = [interrupt] { return interrupt->load(); };
  GenerationStats st = generate(session, tok, prompt, sampler, stop, hooks);
  if (out_tokens) out_tokens->insert(out_tokens->end(), st.tokens.begin(), st.tokens.end());
  return st;
}

}  // namespace moeflux::cli
