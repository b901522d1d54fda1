#include "server/generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"

namespace moeflux {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

TokenLogprob token_logprob(std::span<const float> logits, int32_t id, int top) {
  float mx = -INFINITY;
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - mx);
  const double lse = double(mx) + std::log(sum);
  TokenLogprob r;
  r.id = id;
  r.logprob = float(double(logits[size_t(id)]) - lse);
  if (top > 0) {
    std::vector<int32_t> ids(logits.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
    const size_t k = std::min(size_t(top), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + long(k), ids.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    });
    for (size_t i = 0; i < k; ++i) r.top.emplace_back(ids[i], float(double(logits[size_t(ids[i])]) - lse));
  }
  return r;
}

GenerationStats generate(Session& session, const Tokenizer& tok, std::span<const int32_t> prompt, Sampler& sampler,
                         const StopConditions& stop, const GenerationHooks& hooks) {
  GenerationStats st;
  st.prompt_tokens = int(prompt.size());
  if (prompt.empty()) fail("the prompt is empty after tokenization");
  if (session.position() + int64_t(prompt.size()) >= session.max_positions())
    fail_as(ErrorKind::Capacity, "the prompt is {} tokens but only {} of the context's {} positions are free",
            prompt.size(), session.max_positions() - session.position(), session.max_positions());
  StopChecker checker(stop);
  StreamDecoder detok(tok);
  auto emit = [&](const std::string& t) {
    if (!t.empty() && hooks.on_text) hooks.on_text(t);
  };
  const double t0 = now_s();
  auto logits = session.step(prompt);
  st.prefill_s = now_s() - t0;
  const double t1 = now_s();
  std::vector<float> masked;
  for (;;) {
    std::span<const float> choose = logits;
    if (hooks.constraint) {
      masked.assign(logits.begin(), logits.end());
      hooks.constraint->apply(masked);
      choose = masked;
    }
    const int32_t next = sampler.sample(choose);
    if (hooks.constraint) hooks.constraint->accept(next);
    sampler.accept(next);
    st.tokens.push_back(next);
    st.generated_tokens++;
    if (hooks.on_token) {
      TokenLogprob lp;
      if (hooks.top_logprobs >= 0) lp = token_logprob(logits, next, hooks.top_logprobs);
      lp.id = next;
      hooks.on_token(lp);
    }
    const auto step = checker.push(next, detok.push(next));
    emit(step.emit);
    if (step.stop) {
      st.stop_reason = step.reason;
      break;
    }
    if (hooks.cancelled && hooks.cancelled()) {
      st.stop_reason = "interrupted";
      break;
    }
    if (session.position() + 1 >= session.max_positions()) {
      st.stop_reason = "context_full";
      break;
    }
    logits = hooks.decode_step ? hooks.decode_step(session, next) : session.step(std::span<const int32_t>(&next, 1));
  }
  if (st.stop_reason != "stop_token" && st.stop_reason != "stop_string" && st.stop_reason != "max_tokens")
    emit(checker.finish() + detok.flush());  // what the stop checker and the detokenizer still held
  st.decode_s = now_s() - t1;
  return st;
}

}  // namespace moeflux
