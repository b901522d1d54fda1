// synth --type T: the synthetic model written straight to a GGUF file of
// type T, each tensor generated (synth_values.h) and quantized a chunk at a
// time by the converter's writer; no safetensors intermediate, so a 30 B
// model needs only its GGUF's disk space and a few chunks of memory.
#include <algorithm>
#include <filesystem>
#include <map>

#include "convert/gguf_model_writer.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "model/synth.h"
#include "model/synth_values.h"

namespace moeflux {

namespace fs = std::filesystem;

namespace {

// Generates the requested rows from their chunks; keeps the chunks of the
// last request, since consecutive requests share their boundary chunk.
class SynthSource final : public TensorSource {
 public:
  SynthSource(uint64_t seed, DType dtype, double route_skew) : seed_(seed), dtype_(dtype), skew_(route_skew) {}

  void read_rows(const ModelTensor& t, int64_t r0, int64_t n, float* out, ThreadPool& pool) override {
    if (t.name != name_) {
      name_ = t.name;
      chunks_.clear();
      tseed_ = synth_tensor_seed(seed_, t.name);
      scales_.clear();
      if (t.kind == ParamKind::Router && skew_ > 0) scales_ = synth_router_scales(t.shape[0], skew_, tseed_);
    }
    size_t total = 1;
    for (int64_t d : t.shape) total *= size_t(d);
    const size_t cols = size_t(t.shape.back());
    const size_t begin = size_t(r0) * cols, end = begin + size_t(n) * cols;
    const size_t c0 = begin / kSynthChunkElems, c1 = (end - 1) / kSynthChunkElems;
    std::map<size_t, std::vector<uint16_t>> keep;
    std::vector<size_t> missing;
    for (size_t c = c0; c <= c1; ++c) {
      auto it = chunks_.find(c);
      if (it != chunks_.end()) keep.emplace(c, std::move(it->second));
      else missing.push_back(c);
    }
    for (size_t c : missing) keep[c].resize(std::min(kSynthChunkElems, total - c * kSynthChunkElems));
    pool.parallel_for(missing.size(), 1, [&](size_t a, size_t b) {
      for (size_t i = a; i < b; ++i) {
        auto& buf = keep.at(missing[i]);
        synth_fill_chunk(t, tseed_, missing[i], dtype_, buf.data(), buf.size());
      }
    });
    chunks_ = std::move(keep);
    pool.parallel_for(size_t(n), 16, [&](size_t a, size_t b) {
      for (size_t r = a; r < b; ++r) {
        const size_t row = size_t(r0) + r;
        for (size_t c = 0; c < cols; ++c) {
          const size_t e = row * cols + c;
          uint16_t h = chunks_.at(e / kSynthChunkElems)[e % kSynthChunkElems];
          if (!scales_.empty()) h = synth_scale_value(h, scales_[row], dtype_);
          out[r * cols + c] = dtype_ == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
        }
      }
    });
  }

 private:
  uint64_t seed_;
  DType dtype_;
  double skew_;
  std::string name_;
  uint64_t tseed_ = 0;
  std::vector<float> scales_;
  std::map<size_t, std::vector<uint16_t>> chunks_;
};

}  // namespace

uint64_t synth_gguf(const SynthOptions& o, ConvertType type, const GgufMetadata& tokenizer, const std::string& out_file) {
  const ModelSpec spec = synth_spec(o);
  check_output_path(out_file, o.replace);
  SynthSource src(o.seed, spec.dtype, o.route_skew);
  GgufWriteOptions w;
  w.type = type;
  w.name = o.preset;
  w.extra = tokenizer;
  w.progress = o.progress;
  w.replace = o.replace;
  w.progress_label = "synth " + o.preset + " " + std::string(convert_type_name(type));
  return write_model_gguf(spec, src, out_file, w).file_bytes;
}

}  // namespace moeflux
