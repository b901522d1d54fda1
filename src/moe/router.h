// Routing: which experts each token goes to and with what weight, for every
// router the supported and coming architectures use. Backend-neutral (a
// device backend runs the same rule in a kernel and is tested against
// this). Ties go to the lower expert id, so routing is deterministic.
//
//   Softmax   (Mixtral, Qwen2/3-MoE, OLMoE, Qwen3.5): p = softmax(logits);
//             choose the top-k of p; weight = p (renormalised to sum to 1
//             when `renormalize`).
//   TopkSoftmax (gpt-oss): choose the top-k logits; weight = softmax over
//             those k logits only.
//   Sigmoid   (DeepSeek-V3 `noaux_tc`): s = sigmoid(logits); choice scores
//             c = s + correction_bias; with groups > 1 the experts form
//             `groups` equal groups, each scored by the sum of its two best
//             c, and only the best `topk_groups` groups compete; choose the
//             top-k of c; weight = s (renormalised when `renormalize`).
//   Every weight is finally multiplied by `scaling` (routed_scaling_factor).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace moeflux {

enum class RouterScoring : uint8_t { Softmax, TopkSoftmax, Sigmoid };

struct RouterSpec {
  RouterScoring scoring = RouterScoring::Softmax;
  bool renormalize = false;  // norm_topk_prob (Softmax, Sigmoid)
  int groups = 1, topk_groups = 1;  // group-limited routing (Sigmoid); 1, 1: no groups
  float scaling = 1.0f;             // routed_scaling_factor
};

// Routing of T tokens: for token t, experts[t * k + j] with weight
// weights[t * k + j], j < k, in descending order of choice score.
struct Routing {
  int k = 0;
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

// Checks the spec against E experts and top-k (groups divide E, topk_groups
// <= groups, k <= the experts the kept groups hold); throws naming what.
void validate_router(const RouterSpec& spec, int experts, int k);

// Scratch a caller keeps across calls, so that decode allocates nothing.
struct RouterScratch {
  std::vector<float> scores, choice, group_score;
  std::vector<int32_t> index;
};

// Routes T rows of router logits [T, E]. `correction_bias` [E] is used by
// Sigmoid scoring only (empty: none).
void route(const RouterSpec& spec, const float* logits, int T, int E, int k, std::span<const float> correction_bias,
           Routing& out, RouterScratch& scratch);

}  // namespace moeflux
