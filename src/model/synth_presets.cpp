// Shapes of real models, as their config.json files give them.
#include "core/error.h"
#include "model/synth.h"

namespace moeflux {

using oj = nlohmann::ordered_json;

const std::vector<SynthPreset>& synth_presets() {
  static const std::vector<SynthPreset> presets = {
      {"tiny-moe", "a small qwen3_moe-shaped model for demos and tests (~60 MB)",
       oj{{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"}, {"vocab_size", 2048},
          {"hidden_size", 256}, {"num_hidden_layers", 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"head_dim", 64}, {"intermediate_size", 512}, {"moe_intermediate_size", 256}, {"num_experts", 16},
          {"num_experts_per_tok", 4}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
          {"mlp_only_layers", oj::array()}, {"max_position_embeddings", 4096}, {"rope_theta", 1000000.0},
          {"rms_norm_eps", 1e-6}, {"hidden_act", "silu"}, {"attention_bias", false}, {"tie_word_embeddings", false},
          {"use_sliding_window", false}, {"bos_token_id", nullptr}, {"eos_token_id", nullptr},
          {"torch_dtype", "bfloat16"}},
       ""},
      // One small model per architecture with rows of whole 256-element
      // blocks, so every GGUF type applies and llama.cpp can run them: the
      // cross-implementation checks use these.
      {"tiny-qwen2-moe", "a small qwen2_moe-shaped model (shared expert, qkv bias) for tests (~10 MB)",
       oj{{"architectures", {"Qwen2MoeForCausalLM"}}, {"model_type", "qwen2_moe"}, {"vocab_size", 2048},
          {"hidden_size", 256}, {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"intermediate_size", 512}, {"moe_intermediate_size", 256}, {"shared_expert_intermediate_size", 512},
          {"num_experts", 8}, {"num_experts_per_tok", 2}, {"norm_topk_prob", false}, {"decoder_sparse_step", 1},
          {"mlp_only_layers", oj::array()}, {"max_position_embeddings", 4096}, {"rope_theta", 1000000.0},
          {"rms_norm_eps", 1e-6}, {"hidden_act", "silu"}, {"tie_word_embeddings", false},
          {"use_sliding_window", false}, {"bos_token_id", nullptr}, {"eos_token_id", nullptr},
          {"torch_dtype", "bfloat16"}},
       ""},
      {"tiny-olmoe", "a small olmoe-shaped model (full q/k norm) for tests (~10 MB)",
       oj{{"architectures", {"OlmoeForCausalLM"}}, {"model_type", "olmoe"}, {"vocab_size", 2048},
          {"hidden_size", 256}, {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 4},
          {"intermediate_size", 256}, {"num_experts", 8}, {"num_experts_per_tok", 2}, {"norm_topk_prob", false},
          {"max_position_embeddings", 4096}, {"rope_theta", 10000.0}, {"rms_norm_eps", 1e-5},
          {"hidden_act", "silu"}, {"attention_bias", false}, {"clip_qkv", nullptr}, {"tie_word_embeddings", false},
          {"bos_token_id", nullptr}, {"eos_token_id", nullptr}, {"torch_dtype", "bfloat16"}},
       ""},
      {"tiny-mixtral", "a small mixtral-shaped model (llama in GGUF) for tests (~10 MB)",
       oj{{"architectures", {"MixtralForCausalLM"}}, {"model_type", "mixtral"}, {"vocab_size", 2048},
          {"hidden_size", 256}, {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"intermediate_size", 256}, {"num_local_experts", 8}, {"num_experts_per_tok", 2},
          {"max_position_embeddings", 4096}, {"rope_theta", 1000000.0}, {"rms_norm_eps", 1e-5},
          {"hidden_act", "silu"}, {"sliding_window", nullptr}, {"tie_word_embeddings", false},
          {"bos_token_id", nullptr}, {"eos_token_id", nullptr}, {"torch_dtype", "bfloat16"}},
       ""},
      {"olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924 shape: 16 layers, 64 experts / 8 active, 6.9 B params (13.8 GB bf16)",
       oj{{"architectures", {"OlmoeForCausalLM"}}, {"model_type", "olmoe"}, {"vocab_size", 50304},
          {"hidden_size", 2048}, {"num_hidden_layers", 16}, {"num_attention_heads", 16}, {"num_key_value_heads", 16},
          {"intermediate_size", 1024}, {"num_experts", 64}, {"num_experts_per_tok", 8}, {"norm_topk_prob", false},
          {"max_position_embeddings", 4096}, {"rope_theta", 10000.0}, {"rms_norm_eps", 1e-5},
          {"hidden_act", "silu"}, {"attention_bias", false}, {"clip_qkv", nullptr}, {"tie_word_embeddings", false},
          {"bos_token_id", nullptr}, {"eos_token_id", 50279}, {"pad_token_id", 1}, {"torch_dtype", "bfloat16"}},
       ""},
      {"qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B shape: 48 layers, 128 experts / 8 active, 30.5 B params (61 GB bf16)",
       oj{{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"}, {"vocab_size", 151936},
          {"hidden_size", 2048}, {"num_hidden_layers", 48}, {"num_attention_heads", 32}, {"num_key_value_heads", 4},
          {"head_dim", 128}, {"intermediate_size", 6144}, {"moe_intermediate_size", 768}, {"num_experts", 128},
          {"num_experts_per_tok", 8}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
          {"mlp_only_layers", oj::array()}, {"max_position_embeddings", 40960}, {"rope_theta", 1000000.0},
          {"rms_norm_eps", 1e-6}, {"hidden_act", "silu"}, {"attention_bias", false}, {"tie_word_embeddings", false},
          {"use_sliding_window", false}, {"bos_token_id", 151643}, {"eos_token_id", 151645},
          {"torch_dtype", "bfloat16"}},
       ""},
      {"qwen2-moe-a2.7b", "Qwen/Qwen1.5-MoE-A2.7B shape: 24 layers, 60 experts / 4 active + shared expert",
       oj{{"architectures", {"Qwen2MoeForCausalLM"}}, {"model_type", "qwen2_moe"}, {"vocab_size", 151936},
          {"hidden_size", 2048}, {"num_hidden_layers", 24}, {"num_attention_heads", 16}, {"num_key_value_heads", 16},
          {"intermediate_size", 5632}, {"moe_intermediate_size", 1408}, {"shared_expert_intermediate_size", 5632},
          {"num_experts", 60}, {"num_experts_per_tok", 4}, {"norm_topk_prob", false}, {"decoder_sparse_step", 1},
          {"mlp_only_layers", oj::array()}, {"max_position_embeddings", 8192}, {"rope_theta", 1000000.0},
          {"rms_norm_eps", 1e-6}, {"hidden_act", "silu"}, {"tie_word_embeddings", false},
          {"use_sliding_window", false}, {"bos_token_id", 151643}, {"eos_token_id", 151643},
          {"torch_dtype", "bfloat16"}},
       ""},
      {"mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1 shape: 32 layers, 8 experts / 2 active, 46.7 B params",
       oj{{"architectures", {"MixtralForCausalLM"}}, {"model_type", "mixtral"}, {"vocab_size", 32000},
          {"hidden_size", 4096}, {"num_hidden_layers", 32}, {"num_attention_heads", 32}, {"num_key_value_heads", 8},
          {"intermediate_size", 14336}, {"num_local_experts", 8}, {"num_experts_per_tok", 2},
          {"max_position_embeddings", 32768}, {"rope_theta", 1000000.0}, {"rms_norm_eps", 1e-5},
          {"hidden_act", "silu"}, {"sliding_window", nullptr}, {"tie_word_embeddings", false}, {"bos_token_id", 1},
          {"eos_token_id", 2}, {"torch_dtype", "bfloat16"}},
       ""},
      // Hybrid Gated DeltaNet + gated attention (qwen3_next).
      {"tiny-qwen3-next", "a small qwen3_next-shaped model (linear attention layers) for tests (~12 MB)",
       oj{{"architectures", {"Qwen3NextForCausalLM"}}, {"model_type", "qwen3_next"}, {"vocab_size", 2048},
          {"hidden_size", 256}, {"num_hidden_layers", 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"head_dim", 64}, {"partial_rotary_factor", 0.25}, {"full_attention_interval", 4},
          {"linear_conv_kernel_dim", 4}, {"linear_key_head_dim", 32}, {"linear_value_head_dim", 32},
          {"linear_num_key_heads", 2}, {"linear_num_value_heads", 4}, {"intermediate_size", 512},
          {"moe_intermediate_size", 256}, {"shared_expert_intermediate_size", 256}, {"num_experts", 8},
          {"num_experts_per_tok", 2}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
          {"mlp_only_layers", oj::array()}, {"max_position_embeddings", 4096}, {"rope_theta", 10000000.0},
          {"rms_norm_eps", 1e-6}, {"hidden_act", "silu"}, {"attention_bias", false}, {"tie_word_embeddings", false},
          {"bos_token_id", nullptr}, {"eos_token_id", nullptr}, {"torch_dtype", "bfloat16"}},
       ""},
      {"qwen3-next-80b-a3b",
       "Qwen/Qwen3-Next-80B-A3B shape: 48 layers (36 Gated DeltaNet, 12 gated attention), 512 experts / 10 active "
       "+ shared expert, 81 B params",
       oj{{"architectures", {"Qwen3NextForCausalLM"}}, {"model_type", "qwen3_next"}, {"vocab_size", 151936},
          {"hidden_size", 2048}, {"num_hidden_layers", 48}, {"num_attention_heads", 16}, {"num_key_value_heads", 2},
          {"head_dim", 256}, {"partial_rotary_factor", 0.25}, {"full_attention_interval", 4},
          {"linear_conv_kernel_dim", 4}, {"linear_key_head_dim", 128}, {"linear_value_head_dim", 128},
          {"linear_num_key_heads", 16}, {"linear_num_value_heads", 32}, {"intermediate_size", 5120},
          {"moe_intermediate_size", 512}, {"shared_expert_intermediate_size", 512}, {"num_experts", 512},
          {"num_experts_per_tok", 10}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
          {"mlp_only_layers", oj::array()}, {"max_position_embeddings", 262144}, {"rope_theta", 10000000.0},
          {"rms_norm_eps", 1e-6}, {"hidden_act", "silu"}, {"attention_bias", false}, {"tie_word_embeddings", false},
          {"bos_token_id", 151643}, {"eos_token_id", 151645}, {"torch_dtype", "bfloat16"}},
       ""},
      {"gpt-oss-120b", "openai/gpt-oss-120b shape: 36 layers, 128 experts / 4 active, MXFP4 experts", oj{},
       "needs the gpt_oss architecture (attention sinks, MXFP4 experts), which this build does not support yet"},
      {"qwen3.5-397b-a17b", "Qwen3.5-397B-A17B shape: 60 layers, 512 experts / 10 active, hybrid attention", oj{},
       "needs the qwen3_5_moe architecture (linear attention layers), which this build does not support yet"},
      {"deepseek-v3", "deepseek-ai/DeepSeek-V3 shape: 61 layers, 256 experts / 8 active, MLA", oj{},
       "needs the deepseek_v3 architecture (MLA, noaux_tc routing), which this build does not support yet"},
  };
  return presets;
}

const SynthPreset& find_preset(const std::string& name) {
  std::string names;
  for (auto& p : synth_presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  fail("unknown preset '{}'; presets: {}", name, names);
}

}  // namespace moeflux
