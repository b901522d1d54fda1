#include "model/mlx_model.h"

#include <fmt/format.h>

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "model/arch.h"
#include "quant/mlx_affine.h"
#include "model/tensor_list.h"

namespace moeflux {

namespace {

TensorPart part_of(const TensorRef& t) { return {t.file, t.offset, t.nbytes, t.data}; }

// Narrows a part of a stacked [E, ...] tensor to expert e's contiguous slice.
void slice(uint64_t& offset, uint64_t& nbytes, const uint8_t*& data, int e, int experts) {
  const uint64_t stride = nbytes / uint64_t(experts);
  offset += uint64_t(e) * stride;
  data += uint64_t(e) * stride;
  nbytes = stride;
}

std::string module_of(const std::string& weight_name) {
  constexpr std::string_view kSuffix = ".weight";
  return weight_name.substr(0, weight_name.size() - kSuffix.size());
}

class Resolver {
 public:
  Resolver(const ModelSpec& s, const TensorTable& files) : s_(s), files_(files) {}

  // The matrix `name` (a Hugging Face "<module>.weight") stored as module
  // `m` of the files; expert >= 0: slice `expert` of a stacked module.
  TensorRef matrix(const std::string& name, const std::string& m, int expert) const {
    const TensorRef* w = files_.find(m + ".weight");
    if (!w) {
      if (expert >= 0)
        fail("tensor '{}' not found in {}: neither it nor the stacked '{}.weight' is there", name,
             files_.describe(), m);
      fail("tensor '{}' not found in {}", name, files_.describe());
    }
    const size_t lead = expert >= 0 ? 1 : 0;
    if (w->shape.size() != 2 + lead)
      fail("{}: tensor '{}' has shape {}; expected {} dimensions ({}rows, columns)", w->file, w->name,
           w->shape_str(), 2 + lead, lead ? "experts, " : "");
    if (lead && w->shape[0] != s_.experts)
      fail("{}: stacked tensor '{}' has shape {}: {} experts, but the config says {}", w->file, w->name,
           w->shape_str(), w->shape[0], s_.experts);
    const TensorRef* sc = files_.find(m + ".scales");
    const TensorRef* bi = files_.find(m + ".biases");
    TensorRef r = *w;
    r.name = name;
    r.shape.assign(w->shape.end() - 2, w->shape.end());
    if (!sc) {
      if (w->dtype == DType::U32)
        fail("{}: tensor '{}' is packed uint32 (MLX quantized) but '{}.scales' is missing", w->file, w->name, m);
      if (bi) fail("{}: '{}.biases' is present but '{}.scales' is missing", bi->file, m, m);
    } else {
      quantized(r, *w, *sc, bi, m);
    }
    if (expert >= 0) {
      slice(r.offset, r.nbytes, r.data, expert, s_.experts);
      if (r.mlx) {
        slice(r.mlx->scales.offset, r.mlx->scales.nbytes, r.mlx->scales.data, expert, s_.experts);
        slice(r.mlx->biases.offset, r.mlx->biases.nbytes, r.mlx->biases.data, expert, s_.experts);
      }
    }
    return r;
  }

 private:
  // Makes r the MLX affine matrix of weight w with scales sc and biases bi,
  // refusing anything mlx.core.quantize could not have written.
  void quantized(TensorRef& r, const TensorRef& w, const TensorRef& sc, const TensorRef* bi,
                 const std::string& m) const {
    if (!s_.mlx_quant)
      fail("{}: '{}.scales' is present but config.json has no 'quantization' (bits, group_size)", sc.file, m);
    const auto params = s_.mlx_quant->params_of(m);
    if (!params)
      fail("{}: '{}' is quantized ('{}.scales' exists) but config.json's 'quantization' marks it as not quantized",
           sc.file, m, m);
    const auto [bits, group] = *params;
    if (!bi) fail("{}: MLX affine tensor '{}' has scales but '{}.biases' is missing", w.file, w.name, m);
    if (w.dtype != DType::U32)
      fail("{}: tensor '{}' has dtype {} but has scales; MLX quantized weights are U32", w.file, w.name,
           dtype_name(w.dtype));
    for (const TensorRef* t : {&sc, bi})
      if (!is_weight_float(t->dtype))
        fail("{}: '{}' has dtype {}; MLX scales and biases are F16, BF16 or F32", t->file, t->name,
             dtype_name(t->dtype));
    if (sc.dtype != bi->dtype)
      fail("{}: '{}' is {} but '{}' is {}; MLX scales and biases share one dtype", bi->file, sc.name,
           dtype_name(sc.dtype), bi->name, dtype_name(bi->dtype));
    const int64_t words = w.shape.back();
    if ((words * 32) % bits != 0)
      fail("{}: tensor '{}' has {} uint32 words per row, not a whole number of {}-bit values", w.file, w.name, words,
           bits);
    const int64_t cols = words * 32 / bits;
    if (cols % group != 0)
      fail("{}: tensor '{}': {} columns ({} words of {}-bit values) are not a multiple of the group size {}", w.file,
           w.name, cols, words, bits, group);
    std::vector<int64_t> want = w.shape;
    want.back() = cols / group;
    for (const TensorRef* t : {&sc, bi})
      if (t->shape != want)
        fail("{}: '{}' has shape {} but the packed weight {} at {} bits, group {} implies [{}]", t->file, t->name,
             t->shape_str(), w.shape_str(), bits, group, fmt::join(want, ", "));
    r.dtype = DType::MLX;
    r.shape.back() = cols;
    r.mlx = MlxQuantRef{bits, group, sc.dtype, part_of(sc), part_of(*bi)};
  }

  const ModelSpec& s_;
  const TensorTable& files_;
};

// Rows x cols of module m (its .weight, MLX-quantized or float) in f32.
std::vector<float> module_values(const ModelSpec& s, const TensorTable& files, const std::string& m, int64_t rows,
                                 int64_t cols) {
  const TensorRef& w = files.get(m + ".weight");
  std::vector<float> out(size_t(rows * cols));
  if (const TensorRef* sc = files.find(m + ".scales")) {
    const TensorRef& bi = files.get(m + ".biases");
    const auto params = s.mlx_quant ? s.mlx_quant->params_of(m) : std::nullopt;
    if (!params) fail("{}: '{}' has scales but config.json's 'quantization' does not quantize it", sc->file, m);
    quant::MlxAffine q;
    q.bits = params->first;
    q.group_size = params->second;
    q.scale_type = sc->dtype == DType::F32 ? quant::MlxScaleType::F32
                   : sc->dtype == DType::F16 ? quant::MlxScaleType::F16
                                              : quant::MlxScaleType::BF16;
    q.weight = reinterpret_cast<const uint32_t*>(w.data);
    q.scales = sc->data;
    q.biases = bi.data;
    if (w.nbytes != uint64_t(rows * cols * q.bits / 8) || sc->numel() != rows * cols / q.group_size)
      fail("{}: '{}' holds {} bytes / {} scales, not a [{} x {}] matrix at {} bits, group {}", w.file, m, w.nbytes,
           sc->numel(), rows, cols, q.bits, q.group_size);
    quant::mlx_check(q, size_t(cols));
    for (int64_t r = 0; r < rows; ++r) quant::mlx_dequantize_row(q, size_t(cols), size_t(r), out.data() + r * cols);
    return out;
  }
  if (w.numel() != rows * cols || !is_weight_float(w.dtype))
    fail("{}: '{}' has shape {} and dtype {}; expected a float [{} x {}] matrix", w.file, w.name, w.shape_str(),
         dtype_name(w.dtype), rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (w.dtype == DType::F32) {
      std::memcpy(&out[size_t(i)], w.data + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, w.data + 2 * i, 2);
      out[size_t(i)] = w.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return out;
}

// mlx-lm's DeepSeek-V3 keeps kv_b_proj split as its absorbed-attention
// MultiLinears: self_attn.embed_q [H, kv_lora, nope] (the K part,
// transposed) and self_attn.unembed_out [H, v, kv_lora]. kv_b_proj
// [H * (nope + v), kv_lora] is rebuilt from them, in f32.
TensorRef rebuilt_kv_b(const ModelSpec& s, const TensorTable& files, const ModelTensor& t, std::vector<uint8_t>& storage) {
  const std::string base = t.name.substr(0, t.name.size() - std::string_view("kv_b_proj.weight").size());
  const int64_t H = s.heads, L = s.mla.kv_lora_rank, nope = s.mla.qk_nope_dim, v = s.mla.v_dim, per = nope + v;
  const std::vector<float> k = module_values(s, files, base + "embed_q", H * L, nope);
  const std::vector<float> o = module_values(s, files, base + "unembed_out", H * v, L);
  storage.resize(size_t(H * per * L) * sizeof(float));
  float* kv = reinterpret_cast<float*>(storage.data());
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t j = 0; j < nope; ++j)
      for (int64_t c = 0; c < L; ++c) kv[(h * per + j) * L + c] = k[size_t((h * L + c) * nope + j)];
    std::memcpy(kv + (h * per + nope) * L, o.data() + h * v * L, size_t(v * L) * sizeof(float));
  }
  TensorRef r = files.get(base + "embed_q.weight");
  r.name = t.name;
  r.dtype = DType::F32;
  r.shape = t.shape;
  r.mlx.reset();
  r.data = storage.data();
  r.nbytes = storage.size();
  return r;
}

}  // namespace

MlxModel::MlxModel(const ModelSpec& s, std::unique_ptr<TensorTable> files) : files_(std::move(files)) {
  const ArchDef& arch = arch_def(s.arch);
  const Resolver resolve(s, *files_);
  for (const ModelTensor& t : model_tensors(s, arch)) {
    switch (t.kind) {
      case ParamKind::Norm:
      case ParamKind::Bias: {
        TensorRef r = files_->get(t.name);
        r.name = t.name;  // a view's (TextModelView) refs carry the stored name        // mlx-lm's sanitize moves a depthwise conv1d weight [C, 1, K] to
        // mlx's channels-last [C, K, 1] (Qwen3.5's DeltaNet): the same bytes.
        if (t.shape.size() == 3 && t.shape[1] == 1 && r.shape == std::vector<int64_t>{t.shape[0], t.shape[2], 1})
          r.shape = t.shape;
        refs_.push_back(std::move(r));
        break;
      }
      case ParamKind::Embedding:
      case ParamKind::Linear:
      case ParamKind::Router:
        if (t.slot == TensorSlot::MlaKvB && !files_->find(t.name))
          refs_.push_back(rebuilt_kv_b(s, *files_, t, owned_.emplace_back()));
        else
          refs_.push_back(resolve.matrix(t.name, module_of(t.name), -1));
        break;
      case ParamKind::ExpertLinear: break;  // below, knowing which projection each one is
    }
  }
  for (int l = 0; l < s.layers; ++l) {
    if (!s.layer_is_moe[size_t(l)]) continue;
    const std::string stacked = layer_prefix(l) + std::string(arch.moe_prefix) + "switch_mlp.";
    for (int e = 0; e < s.experts; ++e) {
      const ExpertTensorNames n = arch.expert_names(l, e);
      const std::pair<const std::string*, const char*> projections[] = {
          {&n.gate, "gate_proj"}, {&n.up, "up_proj"}, {&n.down, "down_proj"}};
      for (auto [name, proj] : projections) {
        // Per-expert tensors where the checkpoint has them (older MLX
        // conversions quantized them in place), else the stacked slice.
        if (files_->find(*name))
          refs_.push_back(resolve.matrix(*name, module_of(*name), -1));
        else
          refs_.push_back(resolve.matrix(*name, stacked + proj, e));
      }
    }
  }
  for (const TensorRef& r : refs_) index_.emplace(r.name, &r);
}

bool is_mlx_layout(const ModelSpec& spec, const TensorTable& files) {
  if (spec.mlx_quant) return true;
  for (const auto& [name, _] : files.tensors())
    if (name.find(".switch_mlp.") != std::string::npos) return true;
  return false;
}

}  // namespace moeflux
