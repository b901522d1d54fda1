// Everything the engine needs to know about a model, read from its own files
// at run time. No size in the runtime or kernels comes from anywhere else.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "format/dtype.h"
#include "graph/ir.h"
#include "model/mlx_quant_config.h"
#include "moe/router.h"

namespace moeflux {

class Config;

// How query/key normalisation is applied before RoPE.
enum class QkNorm : uint8_t {
  None,
  PerHead,  // RMSNorm over each head's head_dim (Qwen3)
  Full,     // RMSNorm over the whole projection, all heads together (OLMoE)
};

// DeepSeek-V2/V3 (arch_deepseek_v3.cpp): multi-head latent attention with
// its compressed cache, YaRN RoPE, noaux_tc routing. Unset (kv_lora_rank
// 0) for every other architecture.
// YaRN as config.json's rope_scaling gives it (DeepSeek): what
// yarn_from_config turns into RopeYarn and the softmax-scale correction,
// kept so that GGUF metadata can be written from it.
struct YarnConfig {
  double factor = 1, original_ctx = 0, beta_fast = 32, beta_slow = 1, mscale = 0, mscale_all_dim = 0;
  std::optional<double> attention_factor;
  bool truncate = true;
};

struct MlaSpec {
  int q_lora_rank = 0;  // 0: a direct q_proj (config q_lora_rank null)
  int kv_lora_rank = 0;
  int qk_nope_dim = 0, qk_rope_dim = 0, v_dim = 0;
  float scale = 1.0f;            // softmax scale: qk_head_dim^-1/2, times YaRN's mscale^2
  bool rope_interleave = true;   // RoPE on (2i, 2i+1) pairs
  RopeYarn yarn;                 // factor 1: none
  std::optional<YarnConfig> yarn_config;  // what `yarn` and `scale` were computed from
  RouterSpec router;             // sigmoid scores, groups, routed scaling factor
  int qk_head_dim() const { return qk_nope_dim + qk_rope_dim; }
};

// Hybrid Gated DeltaNet models (qwen3_next, qwen3_5_moe): which layers are
// linear attention and their sizes, and what the full-attention layers
// between them add (output gate, partial RoPE, zero-centred norms).
struct LinearAttnSpec {
  std::vector<uint8_t> layer_is_linear;  // per layer; empty: none
  int conv_kernel = 0, key_heads = 0, value_heads = 0, key_dim = 0, value_dim = 0;
  bool fused_projections = false;  // in_proj_qkvz + in_proj_ba (Qwen3-Next), else four
  bool gated_attention = false;    // q_proj doubled: a sigmoid gate on each head's output
  int rotary_dims = 0;             // RoPE dims per head (partial_rotary_factor); 0: all
  float norm_weight_offset = 0.f;  // 1: norms scale by 1 + w (zero-centred weights)
  bool is_linear(int layer) const { return !layer_is_linear.empty() && layer_is_linear[size_t(layer)]; }
  int key_width() const { return key_heads * key_dim; }
  int value_width() const { return value_heads * value_dim; }
  int conv_channels() const { return 2 * key_width() + value_width(); }
  size_t conv_state_floats() const { return size_t(conv_kernel - 1) * size_t(conv_channels()); }
  size_t state_floats() const {
    return conv_state_floats() + size_t(value_heads) * size_t(key_dim) * size_t(value_dim);
  }
};

// gpt-oss (arch_gpt_oss.cpp): sliding-window and full attention layers
// (layer_types), attention sinks, YaRN, routed experts with biases and the
// clamped SwiGLU. Unset (layer_sliding empty) for every other architecture.
struct GptOssSpec {
  std::vector<uint8_t> layer_sliding;  // per layer: attends within `window` positions
  int window = 0;                      // sliding_window
  RopeYarn yarn;                       // factor 1: none
  float swiglu_alpha = 1.702f, swiglu_limit = 7.0f;
  bool is_sliding(int layer) const { return !layer_sliding.empty() && layer_sliding[size_t(layer)]; }
};

struct ModelSpec {
  std::string arch;  // config.json model_type, e.g. "qwen3_moe"
  std::string source_dir;
  DType dtype = DType::BF16;  // config torch_dtype: what the weights are stored as

  int vocab = 0, hidden = 0, layers = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  int max_positions = 0;
  float rms_eps = 1e-6f;
  float rope_theta = 10000.f;
  // RoPE rotates (2i, 2i+1) pairs instead of (i, i + head_dim/2): GGUF "llama"
  // files, whose q/k rows llama.cpp's converter permuted to that layout.
  bool rope_interleaved = false;
  std::optional<int> sliding_window;
  std::optional<float> clip_qkv;
  QkNorm qk_norm = QkNorm::None;
  bool qkv_bias = false, o_bias = false;
  bool tie_embeddings = false;

  int experts = 0, top_k = 0;
  int expert_ffn = 0;  // intermediate size of one routed expert
  int dense_ffn = 0;   // intermediate size of dense MLP layers (0: none)
  int shared_ffn = 0;  // intermediate size of the shared expert (0: none)
  bool shared_expert_gate = false;  // sigmoid gate on the shared expert
  bool norm_topk = false;           // renormalise the top-k probabilities to sum to 1
  std::vector<uint8_t> layer_is_moe;
  LinearAttnSpec linear_attn;  // qwen3_next, qwen3_5_moe

  std::optional<int32_t> bos_token, eos_token;

  MlaSpec mla;  // DeepSeek-V2/V3 only
  GptOssSpec gpt_oss;  // gpt-oss only

  // config.json keys that neither moeflux nor transformers' config class
  // for this architecture reads (transformers ignores them too); the CLI
  // names them in a warning.
  std::vector<std::string> unread_config_keys;

  // config.json "quantization" of an MLX checkpoint; which tensors are
  // quantized is read from the files (a module with `.scales` is).
  std::optional<MlxQuantConfig> mlx_quant;
  // FP8 (e4m3) weights with square block scales of this size (quantization_config
  // quant_method fp8, DeepSeek-V3's original checkpoints; model/fp8_model.h); 0: none.
  int fp8_block = 0;

  // Stored bytes per parameter of the non-expert and routed-expert tensors,
  // measured from the files (quantized formats and mixes differ from any one
  // dtype); 0 until measured, and then the dtype's size stands in.
  double dense_bytes_per_param = 0, expert_bytes_per_param = 0;

  int q_dim() const { return heads * head_dim; }
  int kv_dim() const { return kv_heads * head_dim; }
  int moe_layers() const;
  // Parameter and byte counts for `inspect`, budgets and the benchmark floors.
  // Parameter counts come from the architecture's tensor table
  // (tensor_list.h: count_params).
  uint64_t expert_bytes() const;         // one routed expert (gate + up + down), as stored
  uint64_t dense_params() const;         // every non-routed-expert parameter
  uint64_t expert_params_total() const;  // every routed expert
  uint64_t active_params_per_token() const;
  uint64_t dense_bytes() const;
  uint64_t expert_bytes_total() const;
  uint64_t active_bytes_per_token() const;

 private:
  double dense_bpp() const;
  double expert_bpp() const;
};

class TensorTable;
// Sets the bytes-per-parameter rates from the tensors as stored.
void measure_stored_bytes(ModelSpec& spec, const TensorTable& tensors);

// Reads config.json in `dir` (or the metadata of a GGUF file) into a ModelSpec, dispatching to the
// architecture named by model_type; refuses unsupported values by name.
ModelSpec load_model_spec(const std::string& dir);
ModelSpec model_spec_from_config(const Config& cfg);

}  // namespace moeflux
