#include "model/fp8_model.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/config.h"
#include "quant/fp8_block.h"

namespace moeflux {

std::optional<int> parse_fp8_quantization(const Config& cfg) {
  if (!cfg.has("quantization_config")) return std::nullopt;
  const auto& q = cfg.raw()["quantization_config"];
  if (!q.is_object() || !q.contains("quant_method") || q["quant_method"] != "fp8") return std::nullopt;
  const std::string where = fmt::format("{}: 'quantization_config'", cfg.source());
  if (q.contains("fmt") && q["fmt"] != "e4m3")
    fail("{}: fmt {} is not implemented (FP8 weights: e4m3)", where, q["fmt"].dump());
  if (q.contains("activation_scheme") && q["activation_scheme"] != "dynamic")
    fail("{}: activation_scheme {} is not implemented (dynamic: activations stay f32)", where,
         q["activation_scheme"].dump());
  const auto& b = q.contains("weight_block_size") ? q["weight_block_size"] : nlohmann::json();
  if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || b[0] != b[1] || b[0].get<int64_t>() < 1 ||
      b[0].get<int64_t>() > 4096)
    fail("{}: weight_block_size {} must be two equal block sizes in [1, 4096] (e.g. [128, 128])", where, b.dump());
  for (auto& [k, _] : q.items())
    if (k != "quant_method" && k != "fmt" && k != "activation_scheme" && k != "weight_block_size" &&
        k != "modules_to_not_convert")
      fail("{}: key '{}' is not understood for FP8 weights", where, k);
  return int(b[0].get<int64_t>());
}

Fp8Model::Fp8Model(int block, std::unique_ptr<TensorTable> files) : files_(std::move(files)) {
  constexpr std::string_view kScale = "_scale_inv";
  for (const auto& [name, t] : files_->tensors()) {
    if (name.ends_with(kScale)) {
      const std::string weight = name.substr(0, name.size() - kScale.size());
      const TensorRef* w = files_->find(weight);
      if (!w || w->dtype != DType::F8E4M3)
        fail("{}: '{}' has no F8_E4M3 tensor '{}' beside it", t->file, name, weight);
      continue;
    }
    if (t->dtype != DType::F8E4M3) {
      index_.emplace(name, t);
      continue;
    }
    const TensorRef* s = files_->find(name + std::string(kScale));
    if (!s) fail("{}: FP8 tensor '{}' has no '{}{}' (its block scales)", t->file, name, name, kScale);
    if (t->shape.size() != 2) fail("{}: FP8 tensor '{}' has shape {}; expected [rows, columns]", t->file, name, t->shape_str());
    if (s->dtype != DType::F32 && s->dtype != DType::BF16)
      fail("{}: '{}' has dtype {}; FP8 block scales are F32 or BF16", s->file, s->name, dtype_name(s->dtype));
    if (s->shape.size() != 2)
      fail("{}: '{}' has shape {}; expected [ceil(rows / {}), ceil(columns / {})]", s->file, s->name, s->shape_str(),
           block, block);
    try {
      quant::fp8_check_scales(s->name.c_str(), size_t(t->shape[0]), size_t(t->shape[1]), block, size_t(s->shape[0]),
                              size_t(s->shape[1]));
    } catch (const Error& e) {
      fail("{}: {} (FP8 weight '{}' of shape {}, weight_block_size {})", s->file, e.what(), name, t->shape_str(), block);
    }
    TensorRef& r = refs_.emplace_back(*t);
    MlxQuantRef q;
    q.bits = 8;
    q.group_size = block;
    q.scale_dtype = s->dtype;
    q.scales = TensorPart{s->file, s->offset, s->nbytes, s->data};
    r.mlx = q;
    index_.emplace(name, &r);
  }
}

}  // namespace moeflux
