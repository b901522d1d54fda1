// The generation loop of `run`, `chat` and `demo`: a text-streaming front
// to the shared loop (server/generation.h) that the server uses too.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "moeflux/engine.h"
#include "server/generation.h"

namespace moeflux::cli {

using moeflux::GenerationStats;

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
