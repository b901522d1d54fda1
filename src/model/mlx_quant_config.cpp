#include "model/mlx_quant_config.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/config.h"
#include "quant/mlx_affine.h"

namespace moeflux {

using nlohmann::json;

namespace {

int int_field(const json& o, const char* key, const std::string& where) {
  if (!o.contains(key)) fail("{}: missing '{}'", where, key);
  const json& v = o[key];
  if (!v.is_number_integer()) fail("{}: '{}' must be an integer, got {}", where, key, v.dump());
  // Range-checked, not cast: bits 2^32 + 4 is not 4.
  if (v.is_number_unsigned() ? v.get<uint64_t>() > 1024 : (v.get<int64_t>() < 0 || v.get<int64_t>() > 1024))
    fail("{}: '{}' = {} is out of range", where, key, v.dump());
  return int(v.get<int64_t>());
}

void check_mode(const json& o, const std::string& where) {
  if (!o.contains("mode")) return;
  const json& m = o["mode"];
  if (!m.is_string() || m.get<std::string>() != "affine")
    fail("{}: unsupported MLX quantization 'mode' = {} (supported: \"affine\")", where, m.dump());
}

void check_supported(int bits, int group_size, const std::string& where) {
  if (!quant::mlx_supported(bits, group_size))
    fail("{}: MLX affine bits {} / group_size {} are not supported (bits 2, 3, 4, 6, 8; group size 32, 64, 128)",
         where, bits, group_size);
}

}  // namespace

std::optional<std::pair<int, int>> MlxQuantConfig::params_of(const std::string& path) const {
  auto it = overrides.find(path);
  if (it == overrides.end()) return std::pair{bits, group_size};
  if (!it->second.quantized) return std::nullopt;
  if (it->second.bits == 0) return std::pair{bits, group_size};  // `true`: the default
  return std::pair{it->second.bits, it->second.group_size};
}

std::string MlxQuantConfig::describe() const {
  std::string s = fmt::format("MLX affine {}-bit, group {}", bits, group_size);
  if (!overrides.empty()) s += fmt::format(" ({} module override{})", overrides.size(), overrides.size() > 1 ? "s" : "");
  return s;
}

std::optional<MlxQuantConfig> parse_mlx_quantization(const Config& cfg) {
  std::string key = "quantization";
  if (!cfg.has(key)) {
    if (!cfg.has("quantization_config")) return std::nullopt;
    // mlx-lm writes its object under both names; anything else under
    // quantization_config is another method (fp8, gptq, awq, ...).
    const json& q = cfg.raw()["quantization_config"];
    // gpt-oss's own checkpoints: MXFP4 routed experts (*_blocks + *_scales),
    // which its experts view reads as they are (gpt_oss_experts.h).
    if (q.is_object() && q.value("quant_method", json()) == "mxfp4" && cfg.get_string("model_type", "") == "gpt_oss")
      return std::nullopt;
    if (!q.is_object() || q.contains("quant_method") || !q.contains("bits")) {
      const std::string method = q.is_object() && q.contains("quant_method") ? q["quant_method"].dump() : q.dump();
      fail("{}: unsupported 'quantization_config' (quant_method {}); moeflux reads f32/f16/bf16 weights and MLX "
           "affine quantization",
           cfg.source(), method);
    }
    key = "quantization_config";
  }
  const json& q = cfg.raw()[key];
  const std::string where = fmt::format("{}: '{}'", cfg.source(), key);
  if (!q.is_object()) fail("{} must be an object, got {}", where, q.dump());
  check_mode(q, where);
  MlxQuantConfig c;
  c.bits = int_field(q, "bits", where);
  c.group_size = int_field(q, "group_size", where);
  check_supported(c.bits, c.group_size, where);
  for (auto& [name, v] : q.items()) {
    if (name == "bits" || name == "group_size" || name == "mode") continue;
    const std::string at = fmt::format("{}['{}']", where, name);
    MlxQuantConfig::Override o;
    if (v.is_boolean()) {
      o.quantized = v.get<bool>();
    } else if (v.is_object()) {
      check_mode(v, at);
      o.bits = int_field(v, "bits", at);
      o.group_size = int_field(v, "group_size", at);
      check_supported(o.bits, o.group_size, at);
    } else {
      fail("{} = {}: expected a module's {{\"bits\", \"group_size\"}} or true/false", at, v.dump());
    }
    c.overrides.emplace(name, o);
  }
  return c;
}

}  // namespace moeflux
