#include "model/model_spec.h"

#include <cmath>
#include <limits>
#include <filesystem>

#include "core/error.h"
#include "model/arch.h"
#include "model/config.h"
#include "model/config_compat.h"
#include "model/gguf_arch.h"
#include "model/gguf_model.h"
#include "model/fp8_model.h"
#include "model/mlx_quant_config.h"
#include "model/tensor_list.h"

namespace moeflux {

namespace {

// A token id, or the first of a list of them (every entry checked): within
// int32 and the vocabulary. Read as int64 and range-checked, not cast: an
// id of 2^32 + 531 is not token 531.
std::optional<int32_t> token_id(const Config& cfg, const std::string& key, int vocab) {
  if (!cfg.has(key)) return std::nullopt;
  const auto& v = cfg.raw()[key];
  auto check = [&](const nlohmann::json& e) -> int32_t {
    if (!e.is_number_integer())
      fail("{}: '{}' must be a token id or a list of them, got {}", cfg.source(), key, v.dump());
    const bool neg = e.is_number_integer() && !e.is_number_unsigned() && e.get<int64_t>() < 0;
    if (neg || e.get<uint64_t>() >= uint64_t(vocab))
      fail("{}: '{}' = {} is not a token id in [0, vocab_size {})", cfg.source(), key, e.dump(), vocab);
    return int32_t(e.get<int64_t>());
  };
  if (v.is_array()) {
    if (v.empty()) return std::nullopt;
    for (auto& e : v) check(e);
    return check(v[0]);
  }
  return check(v);
}

// Values that would change the math in ways the engine does not implement
// are refused here, by key and value, instead of running wrong. (RoPE keys:
// normalize_config.)
void refuse_unsupported(const Config& cfg) {
  const std::string act = cfg.get_string("hidden_act", "silu");
  if (act != "silu") fail("{}: unsupported 'hidden_act' = '{}' (supported: silu)", cfg.source(), act);
}

// A positive finite float; 0, negatives, NaN and infinities turn every
// log-prob into NaN or make the norms divide by zero.
double positive_float(const Config& cfg, const std::string& key, double fallback, double max) {
  const double v = cfg.get_float(key, fallback);
  // The engine computes in f32: a value below its smallest normal (1e-60,
  // found by config_spec_fuzz) would become 0 and every log-prob NaN.
  if (!std::isfinite(v) || v < double(std::numeric_limits<float>::min()) || v > max)
    fail("{}: '{}' = {} must be a finite number in [{}, {}] (a positive 32-bit float)", cfg.source(), key, v,
         std::numeric_limits<float>::min(), max);
  return v;
}

}  // namespace

ModelSpec model_spec_from_config(const Config& raw) {
  ModelSpec s;
  s.arch = raw.get_string("model_type");
  const ArchDef& arch = arch_def(s.arch);
  const Config cfg = normalize_config(arch.text_model_prefix.empty() ? raw : lift_text_config(raw), arch,
                                      &s.unread_config_keys);
  refuse_unsupported(cfg);
  s.fp8_block = parse_fp8_quantization(cfg).value_or(0);
  if (!s.fp8_block) s.mlx_quant = parse_mlx_quantization(cfg);

  s.vocab = cfg.get_dim("vocab_size");
  s.hidden = cfg.get_dim("hidden_size");
  s.layers = cfg.get_dim("num_hidden_layers");
  s.heads = cfg.get_dim("num_attention_heads");
  s.kv_heads = cfg.get_dim("num_key_value_heads", s.heads);
  s.max_positions = cfg.get_dim("max_position_embeddings", 4096);
  s.rms_eps = float(positive_float(cfg, "rms_norm_eps", 1e-6, 1.0));
  s.rope_theta = float(positive_float(cfg, "rope_theta", arch.default_rope_theta, 1e30));
  s.tie_embeddings = cfg.get_bool("tie_word_embeddings", false);
  const std::string dt = cfg.has("torch_dtype") ? cfg.get_string("torch_dtype") : cfg.get_string("dtype", "bfloat16");
  auto parsed = dtype_from_torch(dt);
  if (!parsed || !is_weight_float(*parsed))
    fail("{}: unsupported 'torch_dtype' = '{}' (supported: float32, float16, bfloat16)", cfg.source(), dt);
  s.dtype = *parsed;
  s.bos_token = token_id(cfg, "bos_token_id", s.vocab);
  s.eos_token = token_id(cfg, "eos_token_id", s.vocab);

  arch.configure(cfg, s);

  // Bounded so that q_dim() and the products of two sizes fit an int.
  if (int64_t(s.heads) * s.head_dim > (int64_t(1) << 24))
    fail("{}: num_attention_heads {} x head dimension {} exceeds {}", cfg.source(), s.heads, s.head_dim,
         int64_t(1) << 24);
  if (s.heads % s.kv_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", cfg.source(), s.heads, s.kv_heads);
  if (s.head_dim <= 0 || s.head_dim % 2 != 0)
    fail("{}: head dimension {} must be positive and even for RoPE", cfg.source(), s.head_dim);
  if (s.top_k > s.experts)
    fail("{}: num_experts_per_tok {} exceeds the number of experts {}", cfg.source(), s.top_k, s.experts);
  if (s.sliding_window && *s.sliding_window <= 0)
    fail("{}: 'sliding_window' = {} must be positive", cfg.source(), *s.sliding_window);
  if (s.clip_qkv && !(std::isfinite(*s.clip_qkv) && *s.clip_qkv > 0))
    fail("{}: 'clip_qkv' = {} must be a finite positive number", cfg.source(), *s.clip_qkv);
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
  // A file named .gguf that lacks the magic would otherwise be taken for a
  // safetensors file and reported as lacking config.json.
  if (const fs::path p(dir); fs::is_regular_file(p) && p.extension() == ".gguf")
    fail("{}: not a GGUF file: {} bytes, not starting with the magic 'GGUF'", dir, fs::file_size(p));
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

uint64_t ModelSpec::expert_bytes() const { return uint64_t(double(count_params(*this).expert) * expert_bpp()); }
uint64_t ModelSpec::dense_bytes() const { return uint64_t(double(dense_params()) * dense_bpp()); }
uint64_t ModelSpec::expert_bytes_total() const { return uint64_t(double(expert_params_total()) * expert_bpp()); }

uint64_t ModelSpec::active_bytes_per_token() const {
  const ParamCounts c = count_params(*this);
  return uint64_t(double(active_params_per_token() - c.experts_active) * dense_bpp() +
                  double(c.experts_active) * expert_bpp());
}

void measure_stored_bytes(ModelSpec& s, const TensorTable& tensors) {
  uint64_t dense = 0, expert = 0;
  for (const ModelTensor& t : model_tensors(s, arch_def(s.arch)))
    if (const TensorRef* r = tensors.find(t.name))
      (t.kind == ParamKind::ExpertLinear ? expert : dense) += r->stored_bytes();
  if (s.dense_params() > 0) s.dense_bytes_per_param = double(dense) / double(s.dense_params());
  if (s.expert_params_total() > 0) s.expert_bytes_per_param = double(expert) / double(s.expert_params_total());
}

uint64_t ModelSpec::dense_params() const { return count_params(*this).dense; }
uint64_t ModelSpec::expert_params_total() const { return count_params(*this).experts_total; }

uint64_t ModelSpec::active_params_per_token() const {
  const ParamCounts c = count_params(*this);
  // The embedding table is read one row per token, not whole.
  const uint64_t embed_rows_not_read = uint64_t(vocab - 1) * hidden * (tie_embeddings ? 0 : 1);
  return c.dense - embed_rows_not_read + c.experts_active;
}

}  // namespace moeflux
