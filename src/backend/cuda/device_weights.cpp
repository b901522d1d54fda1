#include "backend/cuda/device_weights.h"

#include <algorithm>
#include <cstring>

#include "backend/cuda/check.h"
#include "backend/cuda/matmul.h"
#include "core/progress.h"
#include "format/tensor_table.h"
#include "format/weight_view.h"

namespace moeflux::cuda {

namespace {

constexpr uint64_t kAlign = 256;
// Left free for activations, KV pages, cuBLAS workspaces and the CUDA
// context's own growth.
constexpr uint64_t kHeadroom = uint64_t(1) << 30;

uint64_t aligned(uint64_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

uint64_t scale_bytes(const WeightView& w) {
  return uint64_t(w.rows) * uint64_t(w.cols / std::max<int>(1, w.group_size)) * dtype_size(w.scale_dtype);
}

// Device bytes of a matrix: its data, plus an MLX matrix's scales and biases.
uint64_t mat_bytes(const WeightView& w) {
  uint64_t n = aligned(uint64_t(w.rows) * w.row_bytes());
  if (w.dtype == DType::MLX) n += 2 * aligned(scale_bytes(w));
  return n;
}

void check_mat(const WeightView& w, const std::string& what) {
  if (!matmul_supports(w.dtype)) fail("CUDA: {} has weights of type {}, which the CUDA backend does not read", what, dtype_name(w.dtype));
  if (w.dtype == DType::MLX) {
    if (!(w.bits == 2 || w.bits == 3 || w.bits == 4 || w.bits == 6 || w.bits == 8) || w.group_size < 32 ||
        w.group_size % 32 != 0 || w.cols % w.group_size != 0)
      fail("CUDA: {} is MLX {}-bit with groups of {} over {} columns (2/3/4/6/8 bits, groups of 32/64/128)", what,
           w.bits, w.group_size, w.cols);
    if (!is_weight_float(w.scale_dtype)) fail("CUDA: {} has MLX scales of type {}", what, dtype_name(w.scale_dtype));
  } else if (is_block_quant(w.dtype) && w.cols % 32 != 0) {
    fail("CUDA: {} has {} columns, not whole blocks of {}", what, w.cols, dtype_name(w.dtype));
  }
}

// Bump allocation in one device block.
struct Arena {
  uint8_t* base = nullptr;
  uint64_t used = 0, size = 0;
  uint8_t* take(uint64_t n) {
    uint8_t* p = base + used;
    used += aligned(n);
    if (used > size) fail_as(ErrorKind::Internal, "CUDA weights: upload overran its block ({} > {})", used, size);
    return p;
  }
};

DevMat upload_mat(const WeightView& w, Arena& a) {
  DevMat m;
  m.rows = w.rows;
  m.cols = w.cols;
  m.row_bytes = w.row_bytes();
  m.dtype = w.dtype;
  const uint64_t n = uint64_t(w.rows) * w.row_bytes();
  uint8_t* d = a.take(n);
  check(cudaMemcpy(d, w.data, n, cudaMemcpyHostToDevice), "uploading a weight matrix");
  m.data = d;
  if (w.dtype == DType::MLX) {
    m.scale_dtype = w.scale_dtype;
    m.bits = w.bits;
    m.group = w.group_size;
    const uint64_t sb = scale_bytes(w);
    uint8_t* s = a.take(sb);
    uint8_t* b = a.take(sb);
    check(cudaMemcpy(s, w.scales, sb, cudaMemcpyHostToDevice), "uploading MLX scales");
    check(cudaMemcpy(b, w.biases, sb, cudaMemcpyHostToDevice), "uploading MLX biases");
    m.scales = s;
    m.biases = b;
  }
  return m;
}

}  // namespace

// What one prepare() must upload.
struct DeviceWeights::Pending {
  std::vector<const TensorRef*> mats, vecs;
  std::vector<std::pair<int, const MoeParams*>> layers;
};

DeviceWeights::DeviceWeights(ExpertSource& experts, const VramTierOptions& vram) : experts_(experts) {
  if (vram.enabled) vram_ = std::make_unique<ExpertVram>(vram, experts);
}

DeviceWeights::~DeviceWeights() {
  vram_.reset();
  for (void* p : blocks_) cudaFree(p);
}

void DeviceWeights::prepare(const Graph& g) {
  std::lock_guard lk(mu_);
  Pending todo;
  auto want_mat = [&](const TensorRef* t) {
    if (t && !mats_.count(t) && std::find(todo.mats.begin(), todo.mats.end(), t) == todo.mats.end())
      todo.mats.push_back(t);
  };
  auto want_vec = [&](const TensorRef* t) {
    if (t && !vecs_.count(t) && std::find(todo.vecs.begin(), todo.vecs.end(), t) == todo.vecs.end())
      todo.vecs.push_back(t);
  };
  for (const Op& op : g.ops) {
    if (auto* o = std::get_if<OpEmbed>(&op)) want_mat(o->table);
    if (auto* o = std::get_if<OpLinear>(&op)) {
      want_mat(o->weight);
      want_vec(o->bias);
    }
    if (auto* o = std::get_if<OpRmsNorm>(&op)) want_vec(o->weight);
    // MLA and Gated DeltaNet (executor_arch.cpp): kv_b_proj in its format,
    // the small per-channel and per-head weights as f32 vectors.
    if (auto* o = std::get_if<OpMlaAttention>(&op)) want_mat(o->mla.kv_b);
    if (auto* o = std::get_if<OpCausalConv>(&op)) want_vec(o->weight);
    if (auto* o = std::get_if<OpGatedDeltaRule>(&op)) {
      want_vec(o->a_log);
      want_vec(o->dt_bias);
    }
    if (auto* o = std::get_if<OpGatedRmsNorm>(&op)) want_vec(o->weight);
    if (auto* o = std::get_if<OpMoe>(&op)) {
      const MoeParams& p = o->moe;
      want_mat(p.router_weight);
      want_vec(p.router_bias);
      want_vec(p.correction_bias);
      want_mat(p.shared_gate);
      want_mat(p.shared_up);
      want_mat(p.shared_down);
      want_mat(p.shared_expert_gate);
      if (!moe_.count(p.layer) &&
          std::none_of(todo.layers.begin(), todo.layers.end(), [&](auto& l) { return l.first == p.layer; }))
        todo.layers.push_back({p.layer, &p});
    }
  }
  if (todo.mats.empty() && todo.vecs.empty() && todo.layers.empty()) return;

  // Sizes first, so that nothing is uploaded unless everything fits.
  uint64_t dense = 0, experts = 0;
  for (const TensorRef* t : todo.mats) {
    const WeightView w = WeightView::of(*t);
    check_mat(w, "tensor '" + t->name + "'");
    dense += mat_bytes(w);
  }
  for (const TensorRef* t : todo.vecs) {
    if (!is_weight_float(t->dtype)) fail("CUDA: vector '{}' has type {} (F32, F16 or BF16 expected)", t->name, dtype_name(t->dtype));
    dense += aligned(uint64_t(t->numel()) * sizeof(float));
  }
  const size_t chunk = size_t(std::max(1, std::min(experts_.max_acquire(), 64)));
  std::vector<ExpertWeights> ew;
  std::vector<int32_t> ids;
  auto for_each_expert_chunk = [&](int layer, int E, auto&& fn) {
    for (int e0 = 0; e0 < E; e0 += int(chunk)) {
      const int n = std::min(int(chunk), E - e0);
      ids.resize(size_t(n));
      for (int i = 0; i < n; ++i) ids[size_t(i)] = e0 + i;
      ew.resize(size_t(n));
      experts_.acquire(layer, ids, ew);
      try {
        fn(e0, n);
      } catch (...) {
        experts_.release(layer, ids);
        throw;
      }
      experts_.release(layer, ids);
    }
  };
  if (vram_) {
    // The device tier: the layer's shapes and formats from its expert 0
    // (the pipeline checks every other expert against them as it copies it).
    for (auto& [layer, p] : todo.layers) {
      const int32_t first = 0;
      ExpertWeights x;
      experts_.acquire(layer, std::span<const int32_t>(&first, 1), std::span<ExpertWeights>(&x, 1));
      DevMoeLayer L;
      try {
        const std::string what = fmt::format("expert 0 of layer {}", layer);
        check_mat(x.gate, what + " (gate)");
        check_mat(x.up, what + " (up)");
        check_mat(x.down, what + " (down)");
        L.experts = p->experts;
        L.ffn = int(x.gate.rows);
        L.hidden = int(x.gate.cols);
        L.gate_dtype = x.gate.dtype;
        L.up_dtype = x.up.dtype;
        L.down_dtype = x.down.dtype;
        L.tiered = true;
      } catch (...) {
        experts_.release(layer, std::span<const int32_t>(&first, 1));
        throw;
      }
      experts_.release(layer, std::span<const int32_t>(&first, 1));
      moe_[layer] = L;
    }
    todo.layers.clear();
  }
  for (auto& entry : todo.layers) {
    const int layer = entry.first;  // a plain variable: lambdas may capture it (clang refuses bindings)
    auto& p = entry.second;
    DType gd{}, ud{}, dd{};
    for_each_expert_chunk(layer, p->experts, [&](int e0, int n) {
      for (int i = 0; i < n; ++i) {
        const ExpertWeights& x = ew[size_t(i)];
        const std::string what = fmt::format("expert {} of layer {}", e0 + i, layer);
        check_mat(x.gate, what + " (gate)");
        check_mat(x.up, what + " (up)");
        check_mat(x.down, what + " (down)");
        if (e0 + i == 0) {
          gd = x.gate.dtype;
          ud = x.up.dtype;
          dd = x.down.dtype;
        } else if (x.gate.dtype != gd || x.up.dtype != ud || x.down.dtype != dd) {
          fail("CUDA: the experts of layer {} differ in format ({} has {}/{}/{}, expert 0 {}/{}/{}); the grouped "
               "kernels need one format per projection and layer",
               layer, what, dtype_name(x.gate.dtype), dtype_name(x.up.dtype), dtype_name(x.down.dtype),
               dtype_name(gd), dtype_name(ud), dtype_name(dd));
        }
        experts += mat_bytes(x.gate) + mat_bytes(x.up) + mat_bytes(x.down);
      }
    });
    experts += 3 * aligned(uint64_t(p->experts) * sizeof(DevMat));
  }
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "reading the device's free memory");
  const uint64_t need = dense + experts;
  if (need + kHeadroom > free_b)
    fail_as(ErrorKind::Capacity,
            "CUDA: the model's weights need {} on the GPU ({} dense, {} routed experts) and {} of {} is free "
            "(with {} kept for activations and KV): give --expert-vram a budget (e.g. 25%) to keep only part of the "
            "routed experts on the GPU and the rest in host RAM (--expert-ram) or on storage, or use --device cpu",
            human_bytes(need), human_bytes(dense), human_bytes(experts), human_bytes(free_b), human_bytes(total_b),
            human_bytes(kHeadroom));

  if (need == 0) return;
  Arena a;
  a.size = need;
  check(cudaMalloc(&a.base, need), fmt::format("allocating {} of device memory for weights", human_bytes(need)));
  blocks_.push_back(a.base);
  for (const TensorRef* t : todo.mats) mats_[t] = upload_mat(WeightView::of(*t), a);
  std::vector<float> host;
  for (const TensorRef* t : todo.vecs) {
    const WeightView w = WeightView::of(*t);
    host.resize(size_t(t->numel()));
    for (size_t i = 0; i < host.size(); ++i) host[i] = load_weight_elem(w, int64_t(i));
    float* d = reinterpret_cast<float*>(a.take(host.size() * sizeof(float)));
    check(cudaMemcpy(d, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "uploading a vector");
    vecs_[t] = d;
  }
  dense_bytes_ += dense;
  for (auto& [layer, p] : todo.layers) {
    const uint64_t before = a.used;
    std::vector<DevMat> gate(size_t(p->experts)), up(size_t(p->experts)), down(size_t(p->experts));
    for_each_expert_chunk(layer, p->experts, [&](int e0, int n) {
      for (int i = 0; i < n; ++i) {
        gate[size_t(e0 + i)] = upload_mat(ew[size_t(i)].gate, a);
        up[size_t(e0 + i)] = upload_mat(ew[size_t(i)].up, a);
        down[size_t(e0 + i)] = upload_mat(ew[size_t(i)].down, a);
      }
    });
    DevMoeLayer L;
    L.experts = p->experts;
    L.ffn = int(gate[0].rows);
    L.hidden = int(gate[0].cols);
    L.gate_dtype = gate[0].dtype;
    L.up_dtype = up[0].dtype;
    L.down_dtype = down[0].dtype;
    auto table = [&](const std::vector<DevMat>& v) {
      auto* d = reinterpret_cast<DevMat*>(a.take(v.size() * sizeof(DevMat)));
      check(cudaMemcpy(d, v.data(), v.size() * sizeof(DevMat), cudaMemcpyHostToDevice), "uploading an expert table");
      return d;
    };
    L.gate = table(gate);
    L.up = table(up);
    L.down = table(down);
    L.bytes = a.used - before;
    expert_bytes_ += L.bytes;
    moe_[layer] = L;
  }
}

const DevMat& DeviceWeights::mat(const TensorRef* t) const {
  std::lock_guard lk(mu_);
  auto it = mats_.find(t);
  if (it == mats_.end()) fail_as(ErrorKind::Internal, "CUDA: matrix '{}' was not uploaded", t ? t->name : "(null)");
  return it->second;
}

const float* DeviceWeights::vec(const TensorRef* t) const {
  std::lock_guard lk(mu_);
  auto it = vecs_.find(t);
  if (it == vecs_.end()) fail_as(ErrorKind::Internal, "CUDA: vector '{}' was not uploaded", t ? t->name : "(null)");
  return it->second;
}

const DevMoeLayer& DeviceWeights::moe(int layer) const {
  std::lock_guard lk(mu_);
  auto it = moe_.find(layer);
  if (it == moe_.end()) fail_as(ErrorKind::Internal, "CUDA: the experts of layer {} were not uploaded", layer);
  return it->second;
}

}  // namespace moeflux::cuda
