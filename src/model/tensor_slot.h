// What a tensor is in the model, whatever a format calls it. The binder
// stores each non-expert tensor of a layer under its slot (LayerWeights),
// GGUF names are looked up by slot (gguf_arch.cpp), blocks read weights by
// slot. A new block adds the slots of its tensors here, and nothing else
// in the binder changes.
#pragma once
#include <cstdint>

namespace moeflux {

enum class TensorSlot : uint8_t {
  None,  // not one of the model's (a name nothing binds)
  Embed, FinalNorm, LmHead,
  AttnNorm, FfnNorm, Q, K, V, O, QBias, KBias, VBias, OBias, QNorm, KNorm,
  MlpGate, MlpUp, MlpDown,                                     // dense layers
  Router, SharedGate, SharedUp, SharedDown, SharedExpertGate,  // MoE layers
  ExpertGate, ExpertUp, ExpertDown,                            // routed expert `expert`
  // DeepSeek-V2/V3 (arch_deepseek_v3.cpp): multi-head latent attention
  // (q_proj is Q when q_lora_rank is null), noaux_tc router bias.
  MlaQA, MlaQANorm, MlaQB, MlaKvA, MlaKvANorm, MlaKvB, RouterCorrectionBias,
  // Gated DeltaNet layers (qwen3_next, qwen3_5_moe): the input projections
  // (fused q/k/v/z and b/a as Qwen3-Next stores them, or separate), conv
  // taps, decay parameters, output norm and projection.
  DnQkvz, DnBa, DnQkv, DnZ, DnB, DnA, DnConv, DnDtBias, DnALog, DnNorm, DnOut,
  // gpt-oss (arch_gpt_oss.cpp): attention sinks, the router's bias, the
  // routed experts' biases ([experts, 2 * ffn] gate/up interleaved, and
  // [experts, hidden]), resident beside the dense weights.
  AttnSinks, RouterBias, ExpertGateUpBias, ExpertDownBias,
  Count  // not a slot: the number of them
};

constexpr size_t kTensorSlots = size_t(TensorSlot::Count);

}  // namespace moeflux
