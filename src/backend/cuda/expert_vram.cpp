#include "backend/cuda/expert_vram.h"

#include <mutex>
#include <cstdlib>

#include "backend/cuda/check.h"
#include "core/progress.h"
#include "format/weight_view.h"

namespace moeflux::cuda {

namespace {

// Left free beside the slots for activations, KV pages and cuBLAS.
constexpr uint64_t kHeadroom = uint64_t(1) << 30;

std::mutex g_fault_mu;
std::string g_fault_spec;  // the value of MOEFLUX_CUDA_COPY_FAULT the count started at
uint64_t g_copies = 0;     // expert copies since then

uint64_t mlx_scale_bytes(const WeightView& w) {
  return uint64_t(w.rows) * uint64_t(w.cols / std::max<int>(1, w.group_size)) * dtype_size(w.scale_dtype);
}

}  // namespace

bool injected_copy_fault() {
  const char* env = std::getenv("MOEFLUX_CUDA_COPY_FAULT");
  const std::string spec = env ? env : "";
  std::lock_guard lk(g_fault_mu);
  if (spec != g_fault_spec) {
    g_fault_spec = spec;
    g_copies = 0;
  }
  ++g_copies;
  if (spec.empty()) return false;
  if (spec == "all") return true;
  return g_copies == std::strtoull(spec.c_str(), nullptr, 10);
}

ExpertVram::ExpertVram(const VramTierOptions& o, ExpertSource& source)
    : experts_(o.experts),
      slots_(o.plan.slots),
      slot_bytes_(o.plan.slot_bytes),
      cache_(o.plan.slots, uint32_t(o.layers) * uint32_t(o.experts), o.policy, o.pinned) {
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "reading the device's free memory");
  const uint64_t need = slots_ * slot_bytes_ + 3 * slots_ * sizeof(DevMat);
  if (need + kHeadroom > free_b)
    fail_as(ErrorKind::Capacity,
            "--expert-vram: {} slots of {} need {} of GPU memory and {} of {} is free (with {} kept for activations "
            "and KV): give a smaller --expert-vram",
            slots_, human_bytes(slot_bytes_), human_bytes(need), human_bytes(free_b), human_bytes(total_b),
            human_bytes(kHeadroom));
  check(cudaMalloc(&base_, slots_ * slot_bytes_), fmt::format("allocating {} of expert slots", human_bytes(need)));
  try {
    check(cudaMalloc(&table_, 3 * slots_ * sizeof(DevMat)), "allocating the expert slot table");
    check(cudaMemset(table_, 0, 3 * slots_ * sizeof(DevMat)), "clearing the expert slot table");
    filled_.resize(slots_);
    used_.resize(slots_);
    for (size_t s = 0; s < slots_; ++s) {
      check(cudaEventCreateWithFlags(&filled_[s], cudaEventDisableTiming), "creating a slot event");
      check(cudaEventCreateWithFlags(&used_[s], cudaEventDisableTiming), "creating a slot event");
    }
    // Page-lock the host tier so copies from it are asynchronous. A source
    // without one (memory-mapped experts) is copied from pageable memory:
    // correct, but the copy is staged by the driver and not overlapped.
    // Where page-locking is refused (a locked-memory limit), copies still
    // work from pageable memory, only slower: said once, not fatal.
    for (const auto& r : source.host_regions()) {
      const cudaError_t e = cudaHostRegister(r.base, r.bytes, cudaHostRegisterDefault);
      if (e != cudaSuccess) {
        cudaGetLastError();
        fmt::print(stderr, "moeflux: warning: page-locking the {} host tier of experts failed ({}); copies to the GPU "
                   "run from pageable memory\n", human_bytes(r.bytes), cudaGetErrorString(e));
        continue;
      }
      registered_.push_back(r.base);
    }
  } catch (...) {
    free_all();
    throw;
  }
  stats_.vram_slots = slots_;
}

ExpertVram::~ExpertVram() { free_all(); }

void ExpertVram::free_all() {
  cudaDeviceSynchronize();  // no copy or kernel may still use the slots or the registered memory
  for (void* p : registered_) cudaHostUnregister(p);
  registered_.clear();
  for (cudaEvent_t e : filled_)
    if (e) cudaEventDestroy(e);
  for (cudaEvent_t e : used_)
    if (e) cudaEventDestroy(e);
  filled_.clear();
  used_.clear();
  cudaFree(table_);
  cudaFree(base_);
  table_ = nullptr;
  base_ = nullptr;
}

uint64_t ExpertVram::fill(size_t s, const ExpertWeights& w, DevMat* stage, cudaStream_t copy, const std::string& what) {
  if (injected_copy_fault())
    fail_as(ErrorKind::Io, "CUDA: copying {} to the GPU failed: injected fault (MOEFLUX_CUDA_COPY_FAULT)", what);
  uint8_t* dst = base_ + s * slot_bytes_;
  uint64_t used = 0, copied = 0;
  auto put = [&](const void* src, uint64_t n, const char* part) -> uint8_t* {
    uint8_t* d = dst + used;
    used += vram_aligned(n);
    if (used > slot_bytes_)
      fail_as(ErrorKind::Internal, "CUDA: {} needs more than a slot's {} ({})", what, human_bytes(slot_bytes_), part);
    check(cudaMemcpyAsync(d, src, n, cudaMemcpyHostToDevice, copy), fmt::format("copying {} ({}) to the GPU", what, part));
    copied += n;
    return d;
  };
  const WeightView* views[3] = {&w.gate, &w.up, &w.down};
  for (int m = 0; m < 3; ++m) {
    const WeightView& v = *views[m];
    DevMat d;
    d.rows = v.rows;
    d.cols = v.cols;
    d.row_bytes = v.row_bytes();
    d.dtype = v.dtype;
    d.data = put(v.data, uint64_t(v.rows) * v.row_bytes(), "weights");
    if (v.dtype == DType::MLX) {
      d.scale_dtype = v.scale_dtype;
      d.bits = v.bits;
      d.group = v.group_size;
      d.scales = put(v.scales, mlx_scale_bytes(v), "scales");
      d.biases = put(v.biases, mlx_scale_bytes(v), "biases");
    }
    stage[m] = d;
    check(cudaMemcpyAsync(table_ + size_t(m) * slots_ + s, &stage[m], sizeof(DevMat), cudaMemcpyHostToDevice, copy),
          fmt::format("copying the slot table entry of {}", what));
  }
  check(cudaEventRecord(filled_[s], copy), "recording a slot's copy");
  return copied;
}

}  // namespace moeflux::cuda
