#include "model/model_spec.h"

#include <filesystem>

#include "core/error.h"
#include "model/arch.h"
#include "model/config.h"
#include "model/gguf_arch.h"
#include "model/gguf_model.h"
#include "model/mlx_quant_config.h"
#include "model/tensor_list.h"

namespace moeflux {

namespace {

std::optional<int32_t> token_id(const Config& cfg, const std::string& key) {
  if (!cfg.has(key)) return std::nullopt;
  const auto& v = cfg.raw()[key];
  if (v.is_number_integer()) return int32_t(v.get<int64_t>());
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return int32_t(v[0].get<int64_t>());
  fail("{}: '{}' must be a token id or a list of them, got {}", cfg.source(), key, v.dump());
}

// Values that would change the math in ways the engine does not implement
// are refused here, by key and value, instead of running wrong.
void refuse_unsupported(const Config& cfg) {
  const std::string act = cfg.get_string("hidden_act", "silu");
  if (act != "silu") fail("{}: unsupported 'hidden_act' = '{}' (supported: silu)", cfg.source(), act);
  if (cfg.has("rope_scaling")) {
    const auto& rs = cfg.raw()["rope_scaling"];
    std::string type = "default";
    if (rs.is_object()) {
      if (rs.contains("rope_type") && rs["rope_type"].is_string()) type = rs["rope_type"];
      else if (rs.contains("type") && rs["type"].is_string()) type = rs["type"];
    }
    if (type != "default")
      fail("{}: unsupported 'rope_scaling' type '{}' (supported: none/default)", cfg.source(), type);
  }
  if (cfg.has("partial_rotary_factor") && cfg.get_float("partial_rotary_factor") != 1.0)
    fail("{}: unsupported 'partial_rotary_factor' = {} (supported: 1.0)", cfg.source(),
         cfg.get_float("partial_rotary_factor"));
}

}  // namespace

ModelSpec model_spec_from_config(const Config& cfg) {
  ModelSpec s;
  s.arch = cfg.get_string("model_type");
  const ArchDef& arch = arch_def(s.arch);
  refuse_unsupported(cfg);
  s.mlx_quant = parse_mlx_quantization(cfg);

  s.vocab = cfg.get_dim("vocab_size");
  s.hidden = cfg.get_dim("hidden_size");
  s.layers = cfg.get_dim("num_hidden_layers");
  s.heads = cfg.get_dim("num_attention_heads");
  s.kv_heads = cfg.get_dim("num_key_value_heads", s.heads);
  s.max_positions = cfg.get_dim("max_position_embeddings", 4096);
  s.rms_eps = float(cfg.get_float("rms_norm_eps", 1e-6));
  s.rope_theta = float(cfg.get_float("rope_theta", 10000.0));
  s.tie_embeddings = cfg.get_bool("tie_word_embeddings", false);
  const std::string dt = cfg.has("torch_dtype") ? cfg.get_string("torch_dtype") : cfg.get_string("dtype", "bfloat16");
  auto parsed = dtype_from_torch(dt);
  if (!parsed || !is_weight_float(*parsed))
    fail("{}: unsupported 'torch_dtype' = '{}' (supported: float32, float16, bfloat16)", cfg.source(), dt);
  s.dtype = *parsed;
  s.bos_token = token_id(cfg, "bos_token_id");
  s.eos_token = token_id(cfg, "eos_token_id");

  arch.configure(cfg, s);

  if (s.heads % s.kv_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", cfg.source(), s.heads, s.kv_heads);
  if (s.head_dim <= 0 || s.head_dim % 2 != 0)
    fail("{}: head dimension {} must be positive and even for RoPE", cfg.source(), s.head_dim);
  if (s.top_k > s.experts)
    fail("{}: num_experts_per_tok {} exceeds the number of experts {}", cfg.source(), s.top_k, s.experts);
  if (s.sliding_window && *s.sliding_window <= 0)
    fail("{}: 'sliding_window' = {} must be positive", cfg.source(), *s.sliding_window);
  for (int l = 0; l < s.layers; ++l)
    if (!s.layer_is_moe[size_t(l)] && s.dense_ffn <= 0)
      fail("{}: layer {} is dense but the config gives no intermediate_size", cfg.source(), l);
  return s;
}

ModelSpec load_model_spec(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::exists(dir)) fail("model path {} does not exist", dir);
  if (is_gguf_file(dir)) {
    return GgufModel(dir).spec();
  }
  const fs::path cfg_path = fs::is_directory(dir) ? fs::path(dir) / "config.json" : fs::path(dir).parent_path() / "config.json";
  if (!fs::exists(cfg_path)) fail("{}: no config.json next to the weights", dir);
  ModelSpec s = model_spec_from_config(Config::load(cfg_path.string()));
  s.source_dir = dir;
  return s;
}

int ModelSpec::moe_layers() const {
  int n = 0;
  for (auto m : layer_is_moe) n += m;
  return n;
}

double ModelSpec::dense_bpp() const { return dense_bytes_per_param > 0 ? dense_bytes_per_param : double(dtype_size(dtype)); }
double ModelSpec::expert_bpp() const {
  return expert_bytes_per_param > 0 ? expert_bytes_per_param : double(dtype_size(dtype));
}

uint64_t ModelSpec::expert_bytes() const { return uint64_t(double(uint64_t(3) * hidden * expert_ffn) * expert_bpp()); }
uint64_t ModelSpec::dense_bytes() const { return uint64_t(double(dense_params()) * dense_bpp()); }
uint64_t ModelSpec::expert_bytes_total() const { return uint64_t(double(expert_params_total()) * expert_bpp()); }

uint64_t ModelSpec::active_bytes_per_token() const {
  const uint64_t expert_active = uint64_t(moe_layers()) * top_k * 3 * uint64_t(hidden) * expert_ffn;
  return uint64_t(double(active_params_per_token() - expert_active) * dense_bpp() + double(expert_active) * expert_bpp());
}

void measure_stored_bytes(ModelSpec& s, const TensorTable& tensors) {
  uint64_t dense = 0, expert = 0;
  for (const ModelTensor& t : model_tensors(s, arch_def(s.arch)))
    if (const TensorRef* r = tensors.find(t.name))
      (t.kind == ParamKind::ExpertLinear ? expert : dense) += r->stored_bytes();
  if (s.dense_params() > 0) s.dense_bytes_per_param = double(dense) / double(s.dense_params());
  if (s.expert_params_total() > 0) s.expert_bytes_per_param = double(expert) / double(s.expert_params_total());
}

uint64_t ModelSpec::attention_params() const {
  uint64_t p = uint64_t(hidden) * (q_dim() + 2 * kv_dim()) + uint64_t(q_dim()) * hidden;
  if (qkv_bias) p += q_dim() + 2 * kv_dim();
  if (o_bias) p += hidden;
  if (qk_norm == QkNorm::PerHead) p += 2 * head_dim;
  if (qk_norm == QkNorm::Full) p += q_dim() + kv_dim();
  return p;
}

uint64_t ModelSpec::dense_params() const {
  uint64_t p = uint64_t(vocab) * hidden * (tie_embeddings ? 1 : 2) + hidden;  // embeddings, head, final norm
  for (int l = 0; l < layers; ++l) {
    p += attention_params() + 2 * uint64_t(hidden);
    if (layer_is_moe[size_t(l)]) {
      p += uint64_t(experts) * hidden;                               // router
      p += uint64_t(3) * hidden * shared_ffn + (shared_expert_gate ? hidden : 0);
    } else {
      p += uint64_t(3) * hidden * dense_ffn;
    }
  }
  return p;
}

uint64_t ModelSpec::expert_params_total() const {
  return uint64_t(moe_layers()) * experts * 3 * uint64_t(hidden) * expert_ffn;
}

uint64_t ModelSpec::active_params_per_token() const {
  // The embedding table is read one row per token, not whole.
  const uint64_t embed_rows_not_read = uint64_t(vocab - 1) * hidden * (tie_embeddings ? 0 : 1);
  return dense_params() - embed_rows_not_read + uint64_t(moe_layers()) * top_k * 3 * uint64_t(hidden) * expert_ffn;
}

}  // namespace moeflux
