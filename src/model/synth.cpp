#include "model/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/half.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "format/safetensors_writer.h"
#include "model/config.h"
#include "model/synth_values.h"
#include "model/tensor_list.h"

namespace moeflux {

namespace fs = std::filesystem;

namespace {

void skew_router_rows(std::vector<uint16_t>& w, int64_t rows, int64_t cols, double skew, uint64_t seed, DType dt) {
  const std::vector<float> scale = synth_router_scales(rows, skew, seed);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      uint16_t& h = w[size_t(r * cols + c)];
      h = synth_scale_value(h, scale[size_t(r)], dt);
    }
}

// The output directory: created when missing (with its parents); an
// existing path must be a directory.
void prepare_out_dir(const std::string& dir) {
  if (dir.empty()) fail("no output directory given");
  std::error_code ec;
  const auto st = fs::symlink_status(dir, ec);
  if (!ec && fs::exists(st) && !fs::is_directory(fs::status(dir, ec)))
    fail("{} exists and is not a directory; synth writes a model directory there (or give --type for one .gguf file)",
         dir);
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create directory {}: {}", dir, ec.message());
}

}  // namespace

ModelSpec synth_spec(const SynthOptions& o, nlohmann::ordered_json* config) {
  const SynthPreset& preset = find_preset(o.preset);
  if (preset.config.empty()) fail("preset '{}' {}", preset.name, preset.unsupported_reason);
  nlohmann::ordered_json cfg = preset.config;
  if (o.layers) {
    if (*o.layers < 1) fail("--layers must be at least 1, got {}", *o.layers);
    cfg["num_hidden_layers"] = *o.layers;
  }
  if (o.experts) {
    const char* key = cfg.contains("num_local_experts")  ? "num_local_experts"
                      : cfg.contains("n_routed_experts") ? "n_routed_experts"  // deepseek_v3
                                                         : "num_experts";
    if (*o.experts < 1) fail("--experts must be at least 1, got {}", *o.experts);
    cfg[key] = *o.experts;
    if (cfg["num_experts_per_tok"].get<int>() > *o.experts) cfg["num_experts_per_tok"] = *o.experts;
  }
  const ModelSpec spec = model_spec_from_config(Config(nlohmann::json::parse(cfg.dump()), "preset " + preset.name));
  if (spec.dtype != DType::BF16 && spec.dtype != DType::F16) fail("synth writes bf16 or f16 weights");
  if (config) *config = cfg;
  return spec;
}

uint64_t synth_model(const SynthOptions& o) {
  nlohmann::ordered_json cfg;
  const ModelSpec spec = synth_spec(o, &cfg);
  const SynthPreset& preset = find_preset(o.preset);
  const ArchDef& arch = arch_def(spec.arch);

  prepare_out_dir(o.out_dir);
  const fs::path dir(o.out_dir);
  if (o.replace == Replace::No && fs::exists(fs::symlink_status(dir / "config.json")))
    fail("{} already holds a model (config.json exists); choose an empty directory or pass --force", o.out_dir);

  // As a checkpoint of the architecture stores them (gpt-oss: fused experts).
  const std::vector<ModelTensor> tensors = arch.stored_tensors ? arch.stored_tensors(spec) : model_tensors(spec, arch);
  std::vector<TensorDecl> decls;
  uint64_t total = 0;
  for (auto& t : tensors) {
    decls.push_back({t.name, spec.dtype, t.shape});
    total += decls.back().nbytes();
  }
  const auto shards = plan_shards(decls, o.max_shard_bytes);
  // Every name is checked before the first byte is written, so a refusal
  // leaves the directory as it was.
  std::vector<std::string> outputs;
  for (size_t si = 0; si < shards.size(); ++si) outputs.push_back((dir / shard_name(si, shards.size())).string());
  if (shards.size() > 1) outputs.push_back((dir / "model.safetensors.index.json").string());
  outputs.push_back((dir / "config.json").string());
  for (const std::string& p : outputs) check_output_path(p, o.replace);
  for (const std::string& name : o.also_writes) check_output_path((dir / name).string(), o.replace);
  const uint64_t free_bytes = fs::space(o.out_dir).available;
  if (free_bytes < total + (64ull << 20))
    fail("{} has {} free but the model needs {}", o.out_dir, human_bytes(free_bytes), human_bytes(total));

  ThreadPool pool;
  Progress progress("synth " + preset.name, total, o.progress);
  std::vector<uint16_t> buf;
  size_t ti = 0;
  for (size_t si = 0; si < shards.size(); ++si) {
    SafetensorsWriter w(outputs[si], shards[si], {{"format", "pt"}, {"generator", "moeflux synth " + preset.name}},
                        o.replace);
    for (const TensorDecl& d : shards[si]) {
      const ModelTensor& t = tensors[ti++];
      const size_t n = d.nbytes() / 2;
      const uint64_t tseed = synth_tensor_seed(o.seed, t.name);
      if (t.kind == ParamKind::Router && o.route_skew > 0) {
        buf.resize(n);
        synth_fill_chunk(t, tseed, 0, spec.dtype, buf.data(), n);
        skew_router_rows(buf, t.shape[0], t.shape[1], o.route_skew, tseed, spec.dtype);
        w.write({reinterpret_cast<const uint8_t*>(buf.data()), n * 2});
        progress.advance(n * 2);
        continue;
      }
      // Generate a batch of chunks in parallel, write it, repeat: memory
      // stays at one batch however large the tensor.
      const size_t batch_chunks = size_t(pool.size()) * 4;
      for (size_t c0 = 0; c0 * kSynthChunkElems < n; c0 += batch_chunks) {
        const size_t begin = c0 * kSynthChunkElems, end = std::min(n, (c0 + batch_chunks) * kSynthChunkElems);
        buf.resize(end - begin);
        const size_t chunks = (end - begin + kSynthChunkElems - 1) / kSynthChunkElems;
        pool.parallel_for(chunks, 1, [&](size_t a, size_t b) {
          for (size_t c = a; c < b; ++c) {
            const size_t off = c * kSynthChunkElems, len = std::min(kSynthChunkElems, end - begin - off);
            synth_fill_chunk(t, tseed, c0 + c, spec.dtype, buf.data() + off, len);
          }
        });
        w.write({reinterpret_cast<const uint8_t*>(buf.data()), buf.size() * 2});
        progress.advance(buf.size() * 2);
      }
    }
    w.finish();
  }
  if (shards.size() > 1)
    write_output_file((dir / "model.safetensors.index.json").string(), shard_index_json(shards) + "\n", o.replace);
  write_output_file((dir / "config.json").string(), cfg.dump(2) + "\n", o.replace);
  progress.done();
  return total;
}

}  // namespace moeflux
