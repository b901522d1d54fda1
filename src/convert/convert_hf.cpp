#include "convert/convert_hf.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "format/safetensors.h"
#include "model/arch.h"
#include "model/gguf_arch.h"
#include "model/tensor_check.h"
#include "model/text_model_view.h"

namespace moeflux {

namespace fs = std::filesystem;

namespace {

// Rows straight from the memory-mapped safetensors, widened to f32.
class SafetensorsSource final : public TensorSource {
 public:
  explicit SafetensorsSource(const TensorTable& m) : m_(m) {}

  void read_rows(const ModelTensor& t, int64_t r0, int64_t n, float* out, ThreadPool& pool) override {
    const TensorRef& ref = m_.get(t.name);
    const size_t cols = size_t(t.shape.back());
    const size_t es = dtype_size(ref.dtype);
    const uint8_t* base = ref.data + size_t(r0) * cols * es;
    const DType dt = ref.dtype;
    pool.parallel_for(size_t(n), 16, [&](size_t a, size_t b) {
      for (size_t r = a; r < b; ++r) {
        const uint8_t* row = base + r * cols * es;
        float* o = out + r * cols;
        if (dt == DType::F32) {
          std::memcpy(o, row, cols * 4);
        } else {
          for (size_t c = 0; c < cols; ++c) {
            uint16_t h;
            std::memcpy(&h, row + 2 * c, 2);
            o[c] = dt == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
          }
        }
      }
    });
  }

 private:
  const TensorTable& m_;
};

}  // namespace

GgufWriteResult convert_hf_to_gguf(const ConvertOptions& opt) {
  if (!fs::is_directory(opt.hf_dir)) fail("{} is not a model directory", opt.hf_dir);
  check_output_path(opt.out_path, opt.overwrite ? Replace::Yes : Replace::No);
  const ModelSpec spec = load_model_spec(opt.hf_dir);
  gguf_arch_name(spec);  // refuse an arch without a GGUF spelling before reading weights
  if (spec.mlx_quant)
    fail("{}: an MLX-quantized checkpoint ({}); convert reads f32, f16 and bf16 Hugging Face checkpoints", opt.hf_dir,
         spec.mlx_quant->describe());
  // A multimodal checkpoint (Qwen3.5): its text model under the text-only names.
  std::unique_ptr<TensorTable> table = std::make_unique<SafetensorsModel>(opt.hf_dir);
  const ArchDef& arch = arch_def(spec.arch);
  if (!arch.text_model_prefix.empty())
    table = std::make_unique<TextModelView>(std::move(table), arch.text_model_prefix, arch.skipped_prefixes);
  const TensorTable& model = *table;
  // Layers and experts against the tensor names, before a name is built for each.
  check_spec_against_checkpoint(spec, arch_def(spec.arch), model, opt.hf_dir);

  // Everything checked before the first byte is written.
  std::vector<std::string> missing;
  std::set<std::string> used;
  for (const ModelTensor& t : model_tensors(spec, arch_def(spec.arch))) {
    used.insert(t.name);
    const TensorRef* ref = model.find(t.name);
    if (!ref) {
      missing.push_back(t.name);
      continue;
    }
    if (ref->shape != t.shape)
      fail("{}: tensor '{}' has shape {}, the config implies [{}]", ref->file, t.name, ref->shape_str(),
           fmt::join(t.shape, ", "));
    if (!is_weight_float(ref->dtype))
      fail("{}: tensor '{}' is {}; convert reads f32, f16 and bf16 weights", ref->file, t.name, dtype_name(ref->dtype));
  }
  if (!missing.empty())
    fail("{}: {} tensor(s) the config implies are missing from {}: {}{}", opt.hf_dir, missing.size(), model.describe(),
         fmt::join(missing.begin(), missing.begin() + std::min<ptrdiff_t>(8, ptrdiff_t(missing.size())), ", "),
         missing.size() > 8 ? ", ..." : "");

  GgufWriteOptions w;
  w.type = opt.type;
  w.name = opt.name.empty() ? fs::absolute(opt.hf_dir).lexically_normal().filename().string() : opt.name;
  if (w.name.empty()) w.name = fs::absolute(opt.hf_dir).lexically_normal().parent_path().filename().string();
  w.extra = opt.extra;
  w.threads = opt.threads;
  w.progress = opt.progress;
  w.progress_label = fmt::format("convert {}", convert_type_name(opt.type));
  w.replace = opt.overwrite ? Replace::Yes : Replace::No;
  SafetensorsSource src(model);
  GgufWriteResult res = write_model_gguf(spec, src, opt.out_path, w);
  std::vector<std::string> unused;
  for (const auto& [name, _] : model.tensors())
    if (!used.count(name)) unused.push_back(name);
  if (!unused.empty())
    res.warnings.push_back(fmt::format("{} checkpoint tensor(s) not part of the model were skipped: {}{}", unused.size(),
                                       fmt::join(unused.begin(), unused.begin() + std::min<ptrdiff_t>(8, ptrdiff_t(unused.size())), ", "),
                                       unused.size() > 8 ? ", ..." : ""));
  return res;
}

}  // namespace moeflux
