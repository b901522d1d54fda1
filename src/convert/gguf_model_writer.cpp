#include "convert/gguf_model_writer.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "format/gguf/gguf_writer.h"
#include "model/arch.h"
#include "model/gguf_arch.h"
#include "model/gguf_layout.h"
#include "quant/quantize.h"

namespace moeflux {

namespace fs = std::filesystem;

namespace {

// f32 values per read chunk (16 MiB): large enough to keep every core busy
// quantizing, small enough that memory stays flat on a 100+ GB model.
constexpr uint64_t kChunkElems = uint64_t(1) << 22;

constexpr uint32_t kQuantVersion = 2;  // GGML_QNT_VERSION, what llama-quantize writes

int64_t rows_of(const ModelTensor& t) { return t.shape.size() == 1 ? 1 : t.shape[0]; }

// LlamaModel.permute in convert_hf_to_gguf.py: within each head of hd
// units (rows, or elements of a bias), unit j*(hd/2)+i moves to 2i+j, so
// that the rotate-half pairs (i, i+hd/2) become adjacent pairs (2i, 2i+1)
// as llama.cpp's "normal" RoPE rotates them.
void permute_heads(float* data, size_t units, size_t unit_len, int hd, std::vector<float>& tmp) {
  const size_t half = size_t(hd) / 2, block = size_t(hd) * unit_len;
  tmp.resize(block);
  for (size_t h = 0; h < units / size_t(hd); ++h) {
    float* base = data + h * block;
    std::memcpy(tmp.data(), base, block * sizeof(float));
    for (size_t i = 0; i < half; ++i)
      for (size_t j = 0; j < 2; ++j)
        std::memcpy(base + (2 * i + j) * unit_len, tmp.data() + (j * half + i) * unit_len, unit_len * sizeof(float));
  }
}

}  // namespace

uint64_t PlannedTensor::nbytes() const {
  GgufTensorDecl d{name, type, dims};
  return d.nbytes();
}

std::vector<PlannedTensor> plan_gguf_tensors(const ModelSpec& spec, ConvertType type, int* fallbacks) {
  std::vector<PlannedTensor> plan;
  std::map<std::string, size_t> index;
  for (const ModelTensor& t : model_tensors(spec, arch_def(spec.arch))) {
    if (GgufRecipe r; gguf_recipe(spec, t, r)) {
      auto shared = std::make_shared<const GgufRecipe>(std::move(r));
      for (size_t k = 0; k < shared->sources.size(); ++k) {
        PlannedTensor p;
        p.name = shared->sources[k];
        p.dims = shared->source_dims[k];
        p.parts.push_back(t);
        p.recipe = shared;
        p.recipe_source = int(k);
        if (!index.emplace(p.name, plan.size()).second)
          fail("{}: GGUF tensor '{}' is written twice", spec.source_dir, p.name);
        plan.push_back(std::move(p));
      }
      continue;
    }
    const GgufLocation loc = gguf_location(spec, t);
    auto it = index.find(loc.name);
    if (it == index.end()) {
      PlannedTensor p;
      p.name = loc.name;
      p.dims = gguf_dims(spec, t);
      if (arch_def(spec.arch).gguf.interleaved_rope && (t.slot == TensorSlot::Q || t.slot == TensorSlot::K))
        p.permute_head_dim = spec.head_dim;
      it = index.emplace(loc.name, plan.size()).first;
      plan.push_back(std::move(p));
    }
    PlannedTensor& p = plan[it->second];
    if (loc.expert != int(p.parts.size()) && !(loc.expert < 0 && p.parts.empty()))
      fail("{}: tensor '{}' arrives as part {} of '{}', expected {}", spec.source_dir, t.name, loc.expert, loc.name,
           p.parts.size());
    p.parts.push_back(t);
  }
  std::vector<std::string> names;
  for (const auto& p : plan) names.push_back(p.name);
  TypeMix mix(type, spec, names);
  for (auto& p : plan) p.type = mix.choose(p.name, p.dims);
  if (fallbacks) *fallbacks = mix.fallbacks();
  return plan;
}

GgufMetadata gguf_file_metadata(const ModelSpec& spec, ConvertType type, const std::string& name,
                                const GgufMetadata& extra) {
  GgufMetadata model;
  add_gguf_model_metadata(spec, model);
  GgufMetadata md;
  const auto& entries = model.entries();
  md.add(entries.front().first, entries.front().second);  // general.architecture first, as gguf-py writes it
  md.add("general.type", {std::string("model")});
  md.add("general.name", {name});
  md.add("general.file_type", {llama_file_type(type)});
  md.add("general.quantization_version", {kQuantVersion});
  for (size_t i = 1; i < entries.size(); ++i) md.add(entries[i].first, entries[i].second);
  for (const auto& [k, v] : extra.entries()) {
    if (const GgufValue* have = md.find(k)) {
      if (!gguf_identical(*have, v))
        fail("extra metadata '{}' = {} conflicts with the model's {}", k, gguf_value_summary(v),
             gguf_value_summary(*have));
      continue;
    }
    md.add(k, v);
  }
  if (spec.bos_token && !md.has("tokenizer.ggml.bos_token_id"))
    md.add("tokenizer.ggml.bos_token_id", {uint32_t(*spec.bos_token)});
  if (spec.eos_token && !md.has("tokenizer.ggml.eos_token_id"))
    md.add("tokenizer.ggml.eos_token_id", {uint32_t(*spec.eos_token)});
  return md;
}

std::vector<std::string> llama_cpp_incompatibilities(const ModelSpec& s) {
  std::vector<std::string> w;
  const std::string a = gguf_arch_name(s);
  if (const GgufLayout* l = arch_def(s.arch).gguf.layout) return l->incompatibilities ? l->incompatibilities(s) : w;
  std::vector<int> dense;
  for (int l = 0; l < s.layers; ++l)
    if (!s.layer_is_moe[size_t(l)]) dense.push_back(l);
  if (!dense.empty())
    w.push_back(fmt::format("layers {} are dense; llama.cpp's {} loader expects every layer to be MoE",
                            fmt::join(dense, ","), a));
  const GgufDialect& d = arch_def(s.arch).gguf;
  const bool llama_norm = d.llama_norm_topk;
  if (s.norm_topk != llama_norm)
    w.push_back(fmt::format("norm_topk_prob = {}, but llama.cpp's {} always uses {} (expert_weights_norm is written, "
                            "llama.cpp ignores it)",
                            s.norm_topk, a, llama_norm));
  if (d.needs_shared_expert && s.shared_ffn == 0)
    w.push_back(fmt::format("no shared expert; llama.cpp's {} loader requires one", a));
  if (s.clip_qkv) w.push_back(fmt::format("clip_qkv = {}: llama.cpp's {} does not clamp q/k/v", *s.clip_qkv, a));
  if (s.sliding_window)
    w.push_back(fmt::format("sliding_window = {}: llama.cpp's {} attends to the whole context", *s.sliding_window, a));
  if (s.o_bias && !d.loads_o_bias) w.push_back(fmt::format("o_proj has a bias, which llama.cpp's {} does not load", a));
  return w;
}

GgufWriteResult write_model_gguf(const ModelSpec& spec, TensorSource& src, const std::string& out_path,
                                 const GgufWriteOptions& opt) {
  GgufWriteResult res;
  const std::vector<PlannedTensor> plan = plan_gguf_tensors(spec, opt.type, &res.fallbacks);
  const GgufMetadata md = gguf_file_metadata(spec, opt.type, opt.name, opt.extra);
  res.warnings = llama_cpp_incompatibilities(spec);
  std::vector<GgufTensorDecl> decls;
  uint64_t data_bytes = 0;
  for (const auto& p : plan) {
    decls.push_back({p.name, p.type, p.dims});
    data_bytes += p.nbytes();
    ++res.type_counts[std::string(ggml_type_info(uint32_t(p.type))->name)];
  }
  const uint64_t header = gguf_header_bytes(md, decls, out_path).size();
  const uint64_t need = header + data_bytes + 32 * plan.size();  // + alignment padding, at most 31 per tensor

  check_output_path(out_path, opt.replace);
  const fs::path out_dir = fs::absolute(fs::path(out_path)).parent_path();
  std::error_code ec;
  const auto space = fs::space(out_dir, ec);
  if (!ec && space.available < need)
    fail("{} has {} free but the GGUF needs {}", out_dir.string(), human_bytes(space.available), human_bytes(need));

  ThreadPool pool(opt.threads);
  GgufWriter writer(out_path, md, decls, opt.replace);
  Progress progress(opt.progress_label, data_bytes, opt.progress);
  std::vector<float> in, tmp;
  std::vector<uint8_t> out;
  // The GGUF tensors of the last transformed HF tensor (several are written in a row).
  const GgufRecipe* scattered_for = nullptr;
  std::vector<std::vector<float>> scattered;
  for (const PlannedTensor& p : plan) {
    const uint64_t cols = p.dims[0];
    const uint64_t row_bytes = *ggml_row_bytes(p.type, cols);
    const bool check_finite = !(p.type == GgmlType::F32 || p.type == GgmlType::F16 || p.type == GgmlType::BF16);
    if (p.recipe) {
      // Dense tensors of modest size: the whole HF tensor, transformed in memory.
      const ModelTensor& part = p.parts.front();
      if (scattered_for != p.recipe.get()) {
        in.resize(size_t(recipe_rows(part.shape) * recipe_cols(part.shape)));
        src.read_rows(part, 0, rows_of(part), in.data(), pool);
        scattered = scatter_recipe(*p.recipe, part.shape, in.data());
        scattered_for = p.recipe.get();
      }
      const std::vector<float>& v = scattered[size_t(p.recipe_source)];
      const uint64_t n = v.size() / cols;
      out.resize(size_t(n * row_bytes));
      for (uint64_t r = 0; r < n; ++r) {
        const float* x = v.data() + r * cols;
        if (check_finite && !std::all_of(x, x + cols, [](float f) { return std::isfinite(f); }))
          fail("tensor '{}' row {} has a non-finite value; {} needs finite weights", p.name, r,
               ggml_type_info(uint32_t(p.type))->name);
        quant::quantize_row(p.type, x, out.data() + r * row_bytes, cols);
      }
      writer.write(out);
      progress.advance(out.size());
      continue;
    }
    for (const ModelTensor& part : p.parts) {
      const int64_t rows = rows_of(part);
      const bool one_d = part.shape.size() == 1;
      int64_t step = std::max<int64_t>(1, int64_t(kChunkElems / cols));
      if (p.permute_head_dim > 0 && !one_d) step = std::max<int64_t>(p.permute_head_dim, step / p.permute_head_dim * p.permute_head_dim);
      step = std::min(step, rows);
      for (int64_t r0 = 0; r0 < rows; r0 += step) {
        const int64_t n = std::min(step, rows - r0);
        in.resize(size_t(n) * cols);
        src.read_rows(part, r0, n, in.data(), pool);
        if (p.permute_head_dim > 0) {
          if (one_d) permute_heads(in.data(), cols, 1, p.permute_head_dim, tmp);
          else permute_heads(in.data(), size_t(n), cols, p.permute_head_dim, tmp);
        }
        out.resize(size_t(n) * row_bytes);
        std::atomic<int64_t> bad_row{-1};
        pool.parallel_for(size_t(n), 1, [&](size_t a, size_t b) {
          for (size_t r = a; r < b; ++r) {
            const float* x = in.data() + r * cols;
            if (check_finite && !std::all_of(x, x + cols, [](float v) { return std::isfinite(v); })) {
              bad_row = int64_t(r);
              continue;
            }
            quant::quantize_row(p.type, x, out.data() + r * row_bytes, cols);
          }
        });
        if (bad_row >= 0)
          fail("tensor '{}' row {} has a non-finite value; {} needs finite weights", part.name, r0 + bad_row,
               ggml_type_info(uint32_t(p.type))->name);
        writer.write(out);
        progress.advance(out.size());
      }
    }
  }
  writer.finish();
  progress.done();
  res.tensors = plan.size();
  res.file_bytes = fs::file_size(out_path);
  return res;
}

}  // namespace moeflux
