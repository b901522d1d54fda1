#include "model/gguf_model.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "format/safetensors.h"
#include "model/arch.h"
#include "model/gguf_arch.h"
#include "model/fp8_model.h"
#include "model/gguf_layout.h"
#include "model/mlx_model.h"
#include "model/text_model_view.h"
#include "model/tensor_check.h"
#include "model/tensor_list.h"

#include <map>
#include <set>

namespace moeflux {

namespace {
constexpr std::string_view kMlxTextPrefix = "language_model.";
}  // namespace

GgufModel::GgufModel(const std::string& path) : file_(path) {
  spec_ = model_spec_from_gguf(file_.metadata(), file_.tensors());
  const ArchDef& arch = arch_def(spec_.arch);
  const std::vector<ModelTensor> wanted = model_tensors(spec_, arch);
  refs_.reserve(wanted.size());
  std::set<std::string, std::less<>> used;
  for (const ModelTensor& mt : wanted) {
    // A tensor llama.cpp's converter transformed: rebuilt in memory.
    if (GgufRecipe recipe; gguf_recipe(spec_, mt, recipe)) {
      for (const std::string& n : recipe.sources) used.insert(n);
      refs_.push_back(materialize_recipe(recipe, mt.name, mt.shape, file_, owned_.emplace_back()));
      continue;
    }
    const GgufLocation loc = gguf_location(spec_, mt);
    used.insert(loc.name);
    const GgufTensor* g = file_.find_tensor(loc.name);
    if (!g) fail("{}: tensor '{}' (for {}) is missing", path, loc.name, mt.name);
    // ggml shapes are 4-D with trailing 1s implied: [256] and [256, 1] are
    // the same tensor (llama.cpp's converter writes the shared-expert gate 1-D).
    auto trimmed = [](std::vector<uint64_t> d) {
      while (d.size() > 1 && d.back() == 1) d.pop_back();
      return d;
    };
    const std::vector<uint64_t> dims = gguf_dims(spec_, mt);
    if (trimmed(g->dims) != trimmed(dims))
      fail("{}: tensor '{}' has shape [{}] but the metadata implies [{}]", path, loc.name, fmt::join(g->dims, ", "),
           fmt::join(dims, ", "));
    const auto dtype = dtype_from_ggml(g->type);
    if (!dtype || (!is_matmul_weight(*dtype)))
      fail("{}: tensor '{}' has type {}, which moeflux cannot compute on", path, loc.name,
           ggml_type_info(uint32_t(g->type))->name);
    TensorRef r;
    r.name = mt.name;
    r.dtype = *dtype;
    r.shape = mt.shape;
    r.file = path;
    r.offset = g->offset;
    r.nbytes = g->nbytes;
    r.data = g->data;
    if (loc.expert >= 0) {
      // Experts are the outermost dimension: expert e is one contiguous slice.
      const uint64_t slice = g->nbytes / g->dims.back();
      r.offset += uint64_t(loc.expert) * slice;
      r.data += uint64_t(loc.expert) * slice;
      r.nbytes = slice;
    }
    refs_.push_back(std::move(r));
  }
  std::vector<std::string_view> names;
  const GgufLayout* layout = arch.gguf.layout;
  for (const GgufTensor& t : file_.tensors())
    if (!(layout && layout->ignored && layout->ignored(spec_, t.name))) names.push_back(t.name);
  check_no_unused_tensors(names, used, path);
  for (const TensorRef& r : refs_) index_.emplace(r.name, &r);
  measure_stored_bytes(spec_, *this);
}

bool is_gguf_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) return false;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  uint32_t magic = 0;
  const bool ok = std::fread(&magic, sizeof magic, 1, f) == 1;
  std::fclose(f);
  return ok && magic == kGgufMagic;
}

OpenedModel open_model(const std::string& path) {
  OpenedModel m;
  if (is_gguf_file(path)) {
    auto g = std::make_unique<GgufModel>(path);
    m.spec = g->spec();
    m.tensors = std::move(g);
  } else {
    m.spec = load_model_spec(path);
    auto files = std::make_unique<SafetensorsModel>(path);
    const ArchDef& arch = arch_def(m.spec.arch);
    if (m.spec.fp8_block) {
      // FP8 weights with their block scales, read as they are.
      if (!arch.text_model_prefix.empty())
        fail("{}: FP8 weights of the multimodal {}: not supported", path, m.spec.arch);
      auto fp8 = std::make_unique<Fp8Model>(m.spec.fp8_block, std::move(files));
      check_spec_against_checkpoint(m.spec, arch, *fp8, path);
      std::set<std::string, std::less<>> used;
      for (const ModelTensor& t : model_tensors(m.spec, arch)) used.insert(t.name);
      std::vector<std::string_view> names;
      for (auto& [n, _] : fp8->tensors()) names.push_back(n);
      check_no_unused_tensors(names, used, path, {"model.", "lm_head."});
      m.tensors = std::move(fp8);
      measure_stored_bytes(m.spec, *m.tensors);
      return m;
    }
    // A multimodal checkpoint: its text model under the text-only names.
    std::unique_ptr<TextModelView> text;
    bool mlx_text = false;
    if (!arch.text_model_prefix.empty()) {
      mlx_text = is_mlx_layout(m.spec, *files);
      if (mlx_text) {
        // mlx-lm's layout of the multimodal checkpoint (its qwen3_5_moe
        // sanitize): the text model under "language_model." (lm_head too),
        // no vision tower or MTP weights, quantization overrides by those paths.
        text = std::make_unique<TextModelView>(std::move(files), kMlxTextPrefix, arch.skipped_prefixes, "");
        if (m.spec.mlx_quant) {
          std::map<std::string, MlxQuantConfig::Override> local;
          for (auto& [k, o] : m.spec.mlx_quant->overrides)
            local[k.starts_with(kMlxTextPrefix) ? k.substr(kMlxTextPrefix.size()) : k] = o;
          m.spec.mlx_quant->overrides = std::move(local);
        }
        // sanitize() stored the zero-centred norms as 1 + w when it moved
        // conv1d to [C, K, 1]; those files scale by their weights as they are.
        for (auto& [n, t] : text->tensors())
          if (n.ends_with("linear_attn.conv1d.weight") && t->shape.size() == 3 && t->shape[2] == 1) {
            m.spec.linear_attn.norm_weight_offset = 0.f;
            break;
          }
      } else {
        text = std::make_unique<TextModelView>(std::move(files), arch.text_model_prefix, arch.skipped_prefixes);
      }
    }
    // Fused experts presented per expert (gpt-oss).
    std::unique_ptr<TensorTable> view;
    if (arch.checkpoint_view) {
      if (is_mlx_layout(m.spec, *files))
        fail("{}: an MLX checkpoint of {}: not supported yet", path, m.spec.arch);
      view = arch.checkpoint_view(m.spec, std::move(files));
    }
    const TensorTable& table = text ? static_cast<const TensorTable&>(*text) : view ? *view : *files;
    // Before model_tensors() builds a name per layer and expert.
    check_spec_against_checkpoint(m.spec, arch, table, path);
    std::set<std::string, std::less<>> used;
    std::vector<std::string_view> names;
    for (auto& [n, _] : table.tensors()) names.push_back(n);
    for (const ModelTensor& t : model_tensors(m.spec, arch)) {
      used.insert(t.name);
      // mlx-lm's DeepSeek: kv_b_proj kept as its two absorbed-attention halves.
      if (t.slot == TensorSlot::MlaKvB) {
        const std::string base = t.name.substr(0, t.name.size() - std::string_view("kv_b_proj.weight").size());
        for (const char* half : {"embed_q", "unembed_out"})
          for (const char* part : {".weight", ".scales", ".biases"}) used.insert(base + half + part);
      }
      // MLX: a quantized module's scales and biases go with its weight.
      const std::string_view w = ".weight";
      if (t.name.size() > w.size() && t.name.compare(t.name.size() - w.size(), w.size(), w) == 0) {
        const std::string module = t.name.substr(0, t.name.size() - w.size());
        used.insert(module + ".scales");
        used.insert(module + ".biases");
      }
    }
    for (int l = 0; l < m.spec.layers; ++l)
      if (m.spec.layer_is_moe[size_t(l)])
        for (const char* proj : {"gate_proj", "up_proj", "down_proj"})
          for (const char* part : {".weight", ".scales", ".biases"})
            used.insert(layer_prefix(l) + std::string(arch.moe_prefix) + "switch_mlp." + proj + part);
    check_no_unused_tensors(names, used, path, {"model.", "lm_head."});
    // A 'quantization' block over unquantized weights would be reported
    // (inspect) and planned as MLX quantized while nothing is.
    if (m.spec.mlx_quant) {
      bool any = false;
      for (std::string_view n : names) any |= n.size() > 7 && n.substr(n.size() - 7) == ".scales";
      if (!any)
        fail("{}: config.json has 'quantization' ({}) but no tensor has '.scales': the weights are not "
             "MLX-quantized; remove the block",
             path, m.spec.mlx_quant->describe());
    }
    if (text && mlx_text)
      m.tensors = std::make_unique<MlxModel>(m.spec, std::move(text));
    else if (text)
      m.tensors = std::move(text);
    else if (view)
      m.tensors = std::move(view);
    else if (is_mlx_layout(m.spec, *files))
      m.tensors = std::make_unique<MlxModel>(m.spec, std::move(files));
    else
      m.tensors = std::move(files);
    measure_stored_bytes(m.spec, *m.tensors);
  }
  return m;
}

}  // namespace moeflux
