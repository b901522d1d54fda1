// Token sampling: turns one step's logits into the next token id.
//
// The chain, applied in this order (the same order llama.cpp uses by default,
// so settings carry over between the two engines):
//
//   1. logit bias      logits[id] += bias (a bias of -inf bans the token)
//   2. penalties       over the distinct tokens in the last penalty_last_n
//                      accepted tokens, with c = how often each occurred:
//                        repetition (CTRL): l > 0 ? l / r : l * r
//                        then l -= c * frequency_penalty + presence_penalty
//   3. greedy          temperature == 0: argmax, ties -> lowest id; stop here
//   4. top-k           keep the k highest logits (ties -> lower ids win)
//   5. softmax         p ∝ exp((l - max) / temperature) over the survivors
//   6. top-p           keep the smallest set of most probable tokens whose
//                      probability sum (normalised after top-k) reaches top_p
//   7. min-p           keep tokens with p >= min_p * max p
//   8. draw            one uniform double from a seeded xoshiro256** stream,
//                      inverted through the cumulative distribution
//
// The PRNG and the uniform double are our own, so that the same seed and the
// same logits give the same tokens with any compiler and standard library
// (std::uniform_real_distribution is implementation-defined).
//
// The sampler sees only tokens passed to accept(); whether prompt tokens count
// for the penalties is the caller's choice (llama.cpp counts only generated
// tokens unless the caller feeds the prompt in).
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "sampling/rng.h"

namespace moeflux {

struct SamplingParams {
  float temperature = 0.8f;         // 0 -> greedy (argmax; ties -> lowest id)
  int top_k = 40;                   // 0 -> off; larger than the vocabulary -> off
  float top_p = 0.95f;              // in (0, 1]; 1 -> off
  float min_p = 0.05f;              // in [0, 1]; 0 -> off (relative to the max probability)
  float repetition_penalty = 1.0f;  // > 0; CTRL-style: logit>0 ? logit/p : logit*p; 1 -> off
  float presence_penalty = 0.0f;    // OpenAI semantics: subtracted once if the token appeared
  float frequency_penalty = 0.0f;   // subtracted count times
  int penalty_last_n = 64;          // window for the penalties; -1 = whole history, 0 = off
  // Added to the logits before anything else; -inf bans the token. An id may
  // appear more than once: the biases add up.
  std::vector<std::pair<int32_t, float>> logit_bias;
  uint64_t seed = 0;  // same seed + same logits -> same tokens

  // Throws moeflux::Error naming the bad field, the value and the allowed range.
  void validate(int32_t vocab_size) const;
};

class Sampler {
 public:
  // One candidate of the final distribution of the last sample() call.
  struct Candidate {
    int32_t id;
    float logit;  // after bias and penalties
    float p;      // normalised over the final candidates
  };

  // Validates p against vocab_size and sizes all scratch buffers, so that
  // sample() does not allocate.
  explicit Sampler(SamplingParams p, int32_t vocab_size);

  // Picks a token. `logits` must hold vocab_size finite values or -inf; it is
  // not modified. Throws if every token is banned (all -inf after bias).
  int32_t sample(std::span<const float> logits);

  // Records a token into the history the penalties look at.
  void accept(int32_t token);

  // Clears the history and restarts the PRNG from the seed, so that a reset
  // sampler repeats the token sequence of a fresh one.
  void reset();

  const SamplingParams& params() const { return params_; }
  int32_t vocab_size() const { return vocab_; }
  std::span<const int32_t> history() const { return history_; }

  // The distribution the last non-greedy sample() drew from (empty after a
  // greedy pick): ids and renormalised probabilities, for logprobs and tests.
  // Order is unspecified. Valid until the next sample().
  std::span<const Candidate> last_candidates() const { return cands_; }

 private:
  void apply_penalties();
  int32_t greedy() const;
  void select_top_k(int k);
  void select_finite();
  void top_p_cut(double full_mass);

  SamplingParams params_;
  int32_t vocab_;
  Rng rng_;
  std::vector<float> work_;       // logits after bias and penalties
  std::vector<int32_t> counts_;   // per-token scratch for the penalties; all zero between calls
  std::vector<int32_t> history_;  // accepted tokens
  std::vector<Candidate> cands_;  // survivors of the chain
};

}  // namespace moeflux
