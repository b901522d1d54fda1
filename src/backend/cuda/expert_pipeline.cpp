#include "backend/cuda/expert_pipeline.h"

#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cuda/matmul.h"
#include "backend/cuda/ops.h"

namespace moeflux::cuda {

namespace {

// Ints a subset takes in the staging buffer: its count, then its tiles.
size_t subset_ints(size_t tiles) { return 1 + tiles * (sizeof(MoeTile) / sizeof(int)); }

template <class T>
T* host_alloc(size_t n, const char* what) {
  void* p = nullptr;
  check(cudaHostAlloc(&p, std::max<size_t>(n, 1) * sizeof(T), cudaHostAllocDefault), what);
  return static_cast<T*>(p);
}

}  // namespace

ExpertPipeline::ExpertPipeline(ExpertVram& vram, ExpertSource& source, cudaStream_t compute)
    : vram_(vram), source_(source), compute_(compute) {
  check(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking), "creating the expert copy stream");
}

ExpertPipeline::~ExpertPipeline() {
  abort();
  for (cudaEvent_t e : timing_) cudaEventDestroy(e);
  cudaFreeHost(readback_);
  cudaFreeHost(stage_);
  cudaFreeHost(stage_mats_);
  cudaFree(dev_subsets_);
  if (copy_) cudaStreamDestroy(copy_);
}

void ExpertPipeline::ensure(int max_tiles, int experts) {
  // Every subset of one layer has its own place (a subset per expert at
  // most), so nothing staged is overwritten before its copy ran.
  const size_t need = size_t(experts) + subset_ints(size_t(max_tiles));
  const size_t rb = 1 + subset_ints(size_t(max_tiles));
  if (need > stage_cap_ || rb > readback_cap_ || size_t(3 * experts) > mats_cap_) {
    // Copies queued from the old buffers may not have run yet.
    check(cudaStreamSynchronize(compute_), "waiting before growing the pipeline's buffers");
    check(cudaStreamSynchronize(copy_), "waiting before growing the pipeline's buffers");
  }
  if (need > stage_cap_) {
    cudaFreeHost(stage_);
    stage_ = nullptr;
    cudaFree(dev_subsets_);
    dev_subsets_ = nullptr;
    stage_ = host_alloc<int>(need, "allocating page-locked staging for expert tiles");
    check(cudaMalloc(&dev_subsets_, need * sizeof(int)), "allocating device memory for expert tiles");
    stage_cap_ = need;
  }
  if (rb > readback_cap_) {
    cudaFreeHost(readback_);
    readback_ = nullptr;
    readback_ = host_alloc<int>(rb, "allocating page-locked memory for the routing");
    readback_cap_ = rb;
  }
  if (size_t(3 * experts) > mats_cap_) {
    cudaFreeHost(stage_mats_);
    stage_mats_ = nullptr;
    stage_mats_ = host_alloc<DevMat>(size_t(3 * experts), "allocating page-locked staging for expert tables");
    mats_cap_ = size_t(3 * experts);
  }
}

cudaEvent_t ExpertPipeline::timing_event() {
  if (timing_used_ == timing_.size()) {
    cudaEvent_t e = nullptr;
    check(cudaEventCreate(&e), "creating a copy timing event");
    timing_.push_back(e);
  }
  return timing_[timing_used_++];
}

void ExpertPipeline::compute(const TieredMoeLayer& L, const std::vector<const Group*>& groups) {
  size_t n = 0;
  for (const Group* g : groups) n += g->tiles.size();
  if (n == 0) return;
  if (stage_used_ + subset_ints(n) > stage_cap_)
    fail_as(ErrorKind::Internal, "expert pipeline: staging for {} tiles overflows ({} of {} used)", n, stage_used_,
            stage_cap_);
  int* rec = stage_ + stage_used_;
  rec[0] = int(n);
  auto* t = reinterpret_cast<MoeTile*>(rec + 1);
  for (const Group* g : groups)
    for (const MoeTile& x : g->tiles) *t++ = MoeTile{int(g->slot), x.row0, x.rows};
  int* dev = dev_subsets_ + stage_used_;
  check(cudaMemcpyAsync(dev, rec, subset_ints(n) * sizeof(int), cudaMemcpyHostToDevice, compute_),
        "uploading expert tiles");
  stage_used_ += subset_ints(n);
  const int* cnt = dev;
  const auto* tiles = reinterpret_cast<const MoeTile*>(dev + 1);
  const int F = L.ffn, D = L.hidden;
  if (L.gate_dtype == L.up_dtype) {
    matmul_grouped(L.gate_dtype, vram_.gate(), vram_.up(), tiles, cnt, int(n), L.one_row_tiles, L.x, D, L.row_token,
                   L.h, F, F, D, compute_, L.int8);
  } else {
    matmul_grouped(L.gate_dtype, vram_.gate(), nullptr, tiles, cnt, int(n), L.one_row_tiles, L.x, D, L.row_token, L.h,
                   F, F, D, compute_, L.int8);
    matmul_grouped(L.up_dtype, vram_.up(), nullptr, tiles, cnt, int(n), L.one_row_tiles, L.x, D, L.row_token, L.h2, F,
                   F, D, compute_, L.int8);
    // An expert's rows are contiguous: SwiGLU over each expert's range.
    for (const Group* g : groups) {
      const int r0 = g->tiles.front().row0, r1 = g->tiles.back().row0 + g->tiles.back().rows;
      const size_t off = size_t(r0) * size_t(F);
      swiglu(L.h + off, L.h2 + off, L.h + off, int64_t(r1 - r0) * F, compute_);
    }
  }
  matmul_grouped(L.down_dtype, vram_.down(), nullptr, tiles, cnt, int(n), L.one_row_tiles, L.h, F, nullptr, L.down, D,
                 D, F, compute_, L.int8);
  check_launch("grouped expert products (tiered)");
  for (const Group* g : groups) check(cudaEventRecord(vram_.used(g->slot), compute_), "recording a slot's use");
}

void ExpertPipeline::issue_miss(const TieredMoeLayer& L, Group& g, const ExpertWeights& w,
                                const std::vector<uint32_t>& pending) {
  const std::string what = fmt::format("expert {} of layer {}", g.expert, L.layer);
  if (w.gate.dtype != L.gate_dtype || w.up.dtype != L.up_dtype || w.down.dtype != L.down_dtype)
    fail("CUDA: {} is {}/{}/{}, expert 0 of the layer {}/{}; the grouped kernels need one format per projection "
         "and layer",
         what, dtype_name(w.gate.dtype), dtype_name(w.up.dtype), dtype_name(w.down.dtype), dtype_name(L.gate_dtype),
         dtype_name(L.up_dtype), dtype_name(L.down_dtype));
  SlotCache& cache = vram_.cache();
  uint32_t evicted = UINT32_MAX;
  const size_t slot = cache.take(
      [&](uint32_t k) { return std::find(pending.begin(), pending.end(), k) != pending.end(); }, evicted);
  if (slot == SlotCache::kNone)
    fail_as(ErrorKind::Capacity,
            "no VRAM slot for {}: all {} slots hold pinned experts or experts this layer still needs; raise "
            "--expert-vram",
            what, cache.slots());
  ExpertStats& st = vram_.stats();
  if (evicted != UINT32_MAX) st.vram_evictions++;
  const size_t timing_mark = timing_used_;
  try {
    // The slot's previous expert may still be read by queued kernels.
    check(cudaStreamWaitEvent(copy_, vram_.used(slot), 0), "ordering a slot's copy after its last use");
    check(cudaEventRecord(timing_event(), copy_), "timing an expert copy");
    if (mats_used_ + 3 > mats_cap_) fail_as(ErrorKind::Internal, "expert pipeline: table staging overflows");
    st.bytes_h2d += vram_.fill(slot, w, stage_mats_ + mats_used_, copy_, what);
    mats_used_ += 3;
    check(cudaEventRecord(timing_event(), copy_), "timing an expert copy");
  } catch (...) {
    cache.abandon(slot);
    timing_used_ = timing_mark;  // keep the timing events paired
    throw;
  }
  cache.commit(slot, g.key);
  g.slot = slot;
  check(cudaStreamWaitEvent(compute_, vram_.filled(slot), 0), "ordering an expert's products after its copy");
  compute(L, {&g});
}

void ExpertPipeline::run(const TieredMoeLayer& L) {
  ensure(L.max_tiles, L.experts);
  // 1. The routing, back on the host: the tier's one synchronisation.
  int* rb = readback_;
  check(cudaMemcpyAsync(rb, L.ntiles, sizeof(int), cudaMemcpyDeviceToHost, compute_), "reading the routing back");
  check(cudaMemcpyAsync(rb + 1, L.tiles, size_t(L.max_tiles) * sizeof(MoeTile), cudaMemcpyDeviceToHost, compute_),
        "reading the routing back");
  check(cudaStreamSynchronize(compute_), "waiting for the routing");
  // The previous layer's copies are complete (its products, behind them, are).
  settle();
  stage_used_ = 0;
  mats_used_ = 0;
  const int n = rb[0];
  if (n < 0 || n > L.max_tiles) fail_as(ErrorKind::Internal, "expert pipeline: {} tiles of at most {}", n, L.max_tiles);
  const auto* tiles = reinterpret_cast<const MoeTile*>(rb + 1);
  groups_.clear();
  for (int i = 0; i < n; ++i) {
    const MoeTile& t = tiles[i];
    if (t.expert < 0 || t.expert >= L.experts)
      fail_as(ErrorKind::Internal, "expert pipeline: tile of expert {} (of {})", t.expert, L.experts);
    if (groups_.empty() || groups_.back().expert != t.expert) {
      groups_.emplace_back();
      groups_.back().expert = t.expert;
      groups_.back().key = vram_.key(L.layer, t.expert);
    }
    groups_.back().tiles.push_back(t);
  }

  std::lock_guard lk(vram_.mutex());
  SlotCache& cache = vram_.cache();
  ExpertStats& st = vram_.stats();
  // 2. The hits, at once (after their slots' copies, for slots another
  // session filled moments ago).
  std::vector<const Group*> hits;
  std::vector<Group*> misses;
  for (Group& g : groups_) {
    g.slot = cache.find(g.key);
    if (g.slot == SlotCache::kNone) {
      misses.push_back(&g);
    } else {
      hits.push_back(&g);
      check(cudaStreamWaitEvent(compute_, vram_.filled(g.slot), 0), "ordering products after a slot's copy");
    }
  }
  st.vram_hits += hits.size();
  st.vram_misses += misses.size();
  compute(L, hits);

  // 3. The misses, each copied and computed as its bytes reach host memory,
  // at most as many at a time as the source lets one hold.
  std::vector<uint32_t> pending;
  for (const Group* g : misses) pending.push_back(g->key);
  const size_t chunk = size_t(std::max(1, std::min<int>(source_.max_acquire(), int(misses.size()))));
  std::vector<int32_t> ids;
  for (size_t c0 = 0; c0 < misses.size(); c0 += chunk) {
    const size_t c1 = std::min(misses.size(), c0 + chunk);
    if (hold_.held) {  // the previous chunk's copies must be done before its host slots are let go
      check(cudaStreamSynchronize(copy_), "waiting for expert copies");
      st.h2d_s += harvest_timing();
      source_.release_hold(hold_);
    }
    ids.clear();
    for (size_t i = c0; i < c1; ++i) ids.push_back(misses[i]->expert);
    source_.acquire_async(L.layer, ids, hold_);
    std::vector<uint8_t> issued(ids.size(), 0);
    size_t left = ids.size();
    while (left > 0) {
      for (size_t i = 0; i < ids.size(); ++i) {
        if (issued[i] || !hold_.ready[i]) continue;
        issue_miss(L, *misses[c0 + i], hold_.weights[i], pending);
        std::erase(pending, misses[c0 + i]->key);
        issued[i] = 1;
        --left;
      }
      if (left > 0) source_.wait_any(hold_);
    }
  }

  // The store's "previous token" predictor: this layer's choice predicts
  // the next step's, and the next layer's last choice this step's next
  // layer; experts already in VRAM are not read again.
  if (source_.prefetch_predictors() & kPredictPrevious) {
    auto& mine = previous_[L.layer];
    mine.clear();
    for (const Group& g : groups_) mine.push_back(g.expert);
    auto next = previous_.upper_bound(L.layer);
    if (next != previous_.end()) {
      ids.clear();
      for (int32_t e : next->second)
        if (!cache.holds(vram_.key(next->first, e))) ids.push_back(e);
      if (!ids.empty()) source_.prefetch(next->first, ids);
    }
  }
}

double ExpertPipeline::harvest_timing() {
  double s = 0;
  for (size_t i = 0; i + 1 < timing_used_; i += 2) {
    float ms = 0;
    if (cudaEventElapsedTime(&ms, timing_[i], timing_[i + 1]) == cudaSuccess) s += ms * 1e-3;
  }
  cudaGetLastError();  // an event never reached (an aborted copy) is not an error here
  timing_used_ = 0;
  return s;
}

void ExpertPipeline::settle() {
  if (timing_used_ > 0) {
    const double s = harvest_timing();
    std::lock_guard lk(vram_.mutex());
    vram_.stats().h2d_s += s;
  }
  if (hold_.held) source_.release_hold(hold_);
}

void ExpertPipeline::abort() noexcept {
  if (copy_) cudaStreamSynchronize(copy_);
  if (compute_) cudaStreamSynchronize(compute_);
  cudaGetLastError();
  try {
    settle();
  } catch (...) {
  }
}

}  // namespace moeflux::cuda
