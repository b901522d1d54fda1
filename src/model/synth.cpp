#include "model/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "format/safetensors_writer.h"
#include "model/config.h"
#include "model/tensor_list.h"

namespace moeflux {

namespace fs = std::filesystem;

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Uniform values with the given mean and standard deviation: a uniform on
// [-a, a] has std a / sqrt(3).
struct Init {
  float mean, std;
};

Init init_for(const ModelTensor& t) {
  switch (t.kind) {
    case ParamKind::Embedding: return {0.f, 1.f};
    case ParamKind::Norm: return {1.f, 0.03f};
    case ParamKind::Bias: return {0.f, 0.02f};
    case ParamKind::Router:
    case ParamKind::Linear:
    case ParamKind::ExpertLinear: return {0.f, 1.f / std::sqrt(float(t.shape.back()))};
  }
  return {0.f, 1.f};
}

constexpr size_t kChunkElems = size_t(1) << 22;  // 4 Mi values: the unit of RNG seeding and parallelism

void fill_chunk(uint16_t* out, size_t n, uint64_t seed, Init init, DType dtype) {
  uint64_t s = seed;
  const float a = init.std * std::sqrt(3.0f);
  for (size_t i = 0; i < n; i += 4) {
    uint64_t r = splitmix(s);
    for (size_t j = 0; j < 4 && i + j < n; ++j, r >>= 16) {
      const float u = (float(r & 0xffff) + 0.5f) * (2.0f / 65536.0f) - 1.0f;  // (-1, 1)
      const float v = init.mean + a * u;
      out[i + j] = dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
    }
  }
}

void skew_router_rows(std::vector<uint16_t>& w, int64_t rows, int64_t cols, double skew, uint64_t seed, DType dt) {
  std::vector<int64_t> rank(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) rank[size_t(i)] = i;
  uint64_t s = seed ^ 0x5bd1e995ull;
  for (int64_t i = rows - 1; i > 0; --i) std::swap(rank[size_t(i)], rank[splitmix(s) % uint64_t(i + 1)]);
  for (int64_t r = 0; r < rows; ++r) {
    const double q = rows > 1 ? double(rank[size_t(r)]) / double(rows - 1) : 1.0;
    const float scale = float(1.0 + skew * q * q);
    for (int64_t c = 0; c < cols; ++c) {
      uint16_t& h = w[size_t(r * cols + c)];
      const float v = (dt == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h)) * scale;
      h = dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
    }
  }
}

void write_config(const std::string& path, const nlohmann::ordered_json& cfg) {
  const std::string tmp = path + ".partial";
  {
    std::ofstream f(tmp);
    f << cfg.dump(2) << "\n";
    if (!f) fail("cannot write {}", tmp);
  }
  fs::rename(tmp, path);
}

}  // namespace

uint64_t synth_model(const SynthOptions& o) {
  const SynthPreset& preset = find_preset(o.preset);
  if (preset.config.empty()) fail("preset '{}' {}", preset.name, preset.unsupported_reason);
  nlohmann::ordered_json cfg = preset.config;
  if (o.layers) {
    if (*o.layers < 1) fail("--layers must be at least 1, got {}", *o.layers);
    cfg["num_hidden_layers"] = *o.layers;
  }
  if (o.experts) {
    const char* key = cfg.contains("num_local_experts") ? "num_local_experts" : "num_experts";
    if (*o.experts < 1) fail("--experts must be at least 1, got {}", *o.experts);
    cfg[key] = *o.experts;
    if (cfg["num_experts_per_tok"].get<int>() > *o.experts) cfg["num_experts_per_tok"] = *o.experts;
  }
  const ModelSpec spec = model_spec_from_config(Config(nlohmann::json::parse(cfg.dump()), "preset " + preset.name));
  if (spec.dtype != DType::BF16 && spec.dtype != DType::F16) fail("synth writes bf16 or f16 weights");
  const ArchDef& arch = arch_def(spec.arch);

  fs::create_directories(o.out_dir);
  if (fs::exists(fs::path(o.out_dir) / "config.json"))
    fail("{} already holds a model (config.json exists); choose an empty directory", o.out_dir);

  const std::vector<ModelTensor> tensors = model_tensors(spec, arch);
  std::vector<TensorDecl> decls;
  uint64_t total = 0;
  for (auto& t : tensors) {
    decls.push_back({t.name, spec.dtype, t.shape});
    total += decls.back().nbytes();
  }
  const auto shards = plan_shards(decls, o.max_shard_bytes);
  const uint64_t free_bytes = fs::space(o.out_dir).available;
  if (free_bytes < total + (64ull << 20))
    fail("{} has {} free but the model needs {}", o.out_dir, human_bytes(free_bytes), human_bytes(total));

  ThreadPool pool;
  Progress progress("synth " + preset.name, total, o.progress);
  std::vector<uint16_t> buf;
  size_t ti = 0;
  for (size_t si = 0; si < shards.size(); ++si) {
    SafetensorsWriter w((fs::path(o.out_dir) / shard_name(si, shards.size())).string(), shards[si],
                        {{"format", "pt"}, {"generator", "moeflux synth " + preset.name}});
    for (const TensorDecl& d : shards[si]) {
      const ModelTensor& t = tensors[ti++];
      const size_t n = d.nbytes() / 2;
      const uint64_t tseed = o.seed * 0x9e3779b97f4a7c15ull ^ hash_name(t.name);
      const Init init = init_for(t);
      if (t.kind == ParamKind::Router && o.route_skew > 0) {
        buf.resize(n);
        fill_chunk(buf.data(), n, tseed, init, spec.dtype);
        skew_router_rows(buf, t.shape[0], t.shape[1], o.route_skew, tseed, spec.dtype);
        w.write({reinterpret_cast<const uint8_t*>(buf.data()), n * 2});
        progress.advance(n * 2);
        continue;
      }
      // Generate a batch of chunks in parallel, write it, repeat: memory
      // stays at one batch however large the tensor.
      const size_t batch_chunks = size_t(pool.size()) * 4;
      for (size_t c0 = 0; c0 * kChunkElems < n; c0 += batch_chunks) {
        const size_t begin = c0 * kChunkElems, end = std::min(n, (c0 + batch_chunks) * kChunkElems);
        buf.resize(end - begin);
        const size_t chunks = (end - begin + kChunkElems - 1) / kChunkElems;
        pool.parallel_for(chunks, 1, [&](size_t a, size_t b) {
          for (size_t c = a; c < b; ++c) {
            const size_t off = c * kChunkElems, len = std::min(kChunkElems, end - begin - off);
            fill_chunk(buf.data() + off, len, tseed + (c0 + c) * 0x632be59bd9b4e019ull, init, spec.dtype);
          }
        });
        w.write({reinterpret_cast<const uint8_t*>(buf.data()), buf.size() * 2});
        progress.advance(buf.size() * 2);
      }
    }
    w.finish();
  }
  if (shards.size() > 1) {
    std::ofstream idx(fs::path(o.out_dir) / "model.safetensors.index.json");
    idx << shard_index_json(shards) << "\n";
  }
  write_config((fs::path(o.out_dir) / "config.json").string(), cfg);
  progress.done();
  return total;
}

}  // namespace moeflux
