// Qwen3.5 / Qwen3.6 MoE (transformers 5): the layers of Qwen3-Next
// (arch_qwen3_next.cpp) with the DeltaNet input projections stored apart
// (in_proj_qkv, in_proj_z, in_proj_b, in_proj_a, each head's parts side by
// side) and a router that always renormalises its top-k. Two model types:
//   qwen3_5_moe       the multimodal checkpoint as published: config keys
//                     under 'text_config', text tensors under
//                     "model.language_model.", a vision tower under
//                     "model.visual." (not loaded) and multi-token-prediction
//                     weights "mtp.*" (not used);
//   qwen3_5_moe_text  the text model alone (Qwen3_5MoeForCausalLM), as
//                     transformers saves it.
// RoPE: multimodal sections (mrope_section) over partial rotary dims; with
// text positions (the same id in all three sections) that is plain RoPE.
#include "model/arch_qwen3_next.h"
#include "model/config.h"
#include "model/tensor_list.h"

namespace moeflux {

extern const GgufLayout kGgufHybridLayout;  // gguf_hybrid.cpp

namespace {

// Fields of transformers' Qwen3_5MoeTextConfig (5.24) beyond the generic
// ones, and of Qwen3_5MoeConfig around it.
constexpr std::string_view kKeys[] = {
    "attention_bias", "full_attention_interval", "head_dim", "hidden_act", "hidden_size", "layer_types",
    "linear_conv_kernel_dim", "linear_key_head_dim", "linear_num_key_heads", "linear_num_value_heads",
    "linear_value_head_dim", "max_position_embeddings", "moe_intermediate_size", "num_attention_heads", "num_experts",
    "num_experts_per_tok", "num_hidden_layers", "num_key_value_heads", "output_router_logits", "rms_norm_eps",
    "router_aux_loss_coef", "shared_expert_intermediate_size", "vocab_size", "attn_output_gate",
    // Published configs' multi-token-prediction sizes: those weights (mtp.*) are not used.
    "mtp_num_hidden_layers", "mtp_use_dedicated_embeddings",
    // Qwen3_5MoeConfig (the multimodal wrapper)
    "image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"};
constexpr std::string_view kRopeIgnored[] = {"mrope_section", "mrope_interleaved"};
constexpr std::string_view kSkipped[] = {"model.visual."};

void configure(const Config& cfg, ModelSpec& s) {
  configure_qwen3_next_layers(cfg, s, /*fused_projections=*/false);
  s.norm_topk = true;  // Qwen3_5MoeTopKRouter always renormalises
}

ExpertTensorNames experts(int layer, int e) {
  const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e) + ".";
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

void layer_tensors(TensorList& list, int l) { qwen3_next_layer_tensors(list, l, layer_prefix(l)); }

}  // namespace

extern const ArchDef kArchQwen3_5Moe{.model_type = "qwen3_5_moe",
                                     .configure = configure,
                                     .moe_prefix = "mlp.",
                                     .expert_names = experts,
                                     .default_rope_theta = 10000.0,
                                     .class_keys = kKeys,
                                     .aliases = {},
                                     .gguf = {.name = "qwen35moe", .llama_norm_topk = true, .expert_ffn_key = true, .layout = &kGgufHybridLayout},
                                     .layer_tensors = layer_tensors,
                                     .build_layer = qwen3_next_build_layer,
                                     .layer_state = qwen3_next_layer_state,
                                     .partial_rotary = true,
                                     .rope_ignored_keys = kRopeIgnored,
                                     .text_model_prefix = "model.language_model.",
                                     .skipped_prefixes = kSkipped};

extern const ArchDef kArchQwen3_5MoeText{.model_type = "qwen3_5_moe_text",
                                         .configure = configure,
                                         .moe_prefix = "mlp.",
                                         .expert_names = experts,
                                         .default_rope_theta = 10000.0,
                                         .class_keys = kKeys,
                                         .aliases = {},
                                         .gguf = {.name = "qwen35moe", .llama_norm_topk = true, .expert_ffn_key = true, .layout = &kGgufHybridLayout},
                                         .layer_tensors = layer_tensors,
                                         .build_layer = qwen3_next_build_layer,
                                         .layer_state = qwen3_next_layer_state,
                                         .partial_rotary = true,
                                         .rope_ignored_keys = kRopeIgnored};

}  // namespace moeflux
