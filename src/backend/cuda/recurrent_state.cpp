#include "backend/cuda/recurrent_state.h"

#include <cuda_runtime.h>

#include "backend/cuda/check.h"
#include "core/progress.h"

namespace moeflux::cuda {

DevStateSnapshot::DevStateSnapshot(const void* owner, size_t floats) : owner_(owner), floats_(floats) {
  if (floats_ == 0) return;
  const cudaError_t e = cudaMalloc(&data_, floats_ * sizeof(float));
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky allocation error
    fail_as(ErrorKind::Capacity, "CUDA: allocating {} of device memory for a checkpoint of the recurrent states: {}",
            human_bytes(floats_ * sizeof(float)), cudaGetErrorString(e));
  }
}

DevStateSnapshot::~DevStateSnapshot() {
  if (data_) {
    cudaDeviceSynchronize();  // a restore may still be copying from it
    cudaFree(data_);
  }
}

DevRecurrentStates::DevRecurrentStates(const std::vector<StateDesc>& states, StateBudget& budget) : budget_(budget) {
  for (const StateDesc& s : states) {
    offset_.push_back(total_);
    const size_t n = s.positional() ? 0 : s.fixed_floats;
    size_.push_back(n);
    total_ += n;
  }
  if (total_ == 0) return;
  if (!budget_.try_take(bytes()))
    fail_as(ErrorKind::Capacity,
            "the session state budget of {} is used up ({} in use by all sessions); the recurrent layers' state "
            "needs {} per session: raise the budget or end other sessions",
            human_bytes(budget_.limit()), human_bytes(budget_.used()), human_bytes(bytes()));
  const cudaError_t e = cudaMalloc(&buf_, bytes());
  if (e != cudaSuccess) {
    budget_.give_back(bytes());
    cudaGetLastError();
    fail_as(ErrorKind::Capacity, "CUDA: allocating {} of device memory for the recurrent layers' state: {}",
            human_bytes(bytes()), cudaGetErrorString(e));
  }
  clear();
}

DevRecurrentStates::~DevRecurrentStates() {
  if (!buf_) return;
  cudaDeviceSynchronize();
  cudaFree(buf_);
  budget_.give_back(bytes());
}

float* DevRecurrentStates::data(uint32_t state, size_t offset, size_t floats, const char* op) const {
  if (state >= size_.size() || size_[state] == 0)
    fail_as(ErrorKind::Internal, "cuda backend: {} on layer state {}, which is not a recurrent state", op, state);
  if (offset + floats > size_[state])
    fail_as(ErrorKind::Internal, "graph: {} uses floats [{}, {}) of layer state {}, which holds {}", op, offset,
            offset + floats, state, size_[state]);
  return buf_ + offset_[state] + offset;
}

void DevRecurrentStates::clear() {
  if (!buf_) return;
  // Kernels queued on the session's stream may still use the blocks.
  check(cudaDeviceSynchronize(), "synchronizing before clearing the recurrent states");
  check(cudaMemset(buf_, 0, bytes()), "clearing the recurrent states");
  check(cudaDeviceSynchronize(), "clearing the recurrent states");
}

std::shared_ptr<const StateSnapshot> DevRecurrentStates::snapshot(const void* owner) const {
  auto s = std::make_shared<DevStateSnapshot>(owner, total_);
  if (total_) {
    check(cudaDeviceSynchronize(), "synchronizing before a checkpoint of the recurrent states");
    check(cudaMemcpy(s->data(), buf_, bytes(), cudaMemcpyDeviceToDevice), "copying the recurrent states");
  }
  return s;
}

void DevRecurrentStates::restore(const StateSnapshot& snapshot, const void* owner) {
  const auto* s = dynamic_cast<const DevStateSnapshot*>(&snapshot);
  if (!s || s->owner() != owner)
    fail_as(ErrorKind::Internal, "cuda backend: a state snapshot of another session or backend");
  if (s->floats() != total_)
    fail_as(ErrorKind::Internal, "cuda backend: a state snapshot of {} floats for a session of {}", s->floats(), total_);
  if (!total_) return;
  check(cudaDeviceSynchronize(), "synchronizing before restoring the recurrent states");
  check(cudaMemcpy(buf_, s->data(), bytes(), cudaMemcpyDeviceToDevice), "restoring the recurrent states");
  check(cudaDeviceSynchronize(), "restoring the recurrent states");
}

void DevRecurrentStates::copy_out(std::vector<uint8_t>& out) const {
  if (!total_) return;
  check(cudaDeviceSynchronize(), "waiting for the device before copying the recurrent states out");
  const size_t at = out.size();
  out.resize(at + bytes());
  check(cudaMemcpy(out.data() + at, buf_, bytes(), cudaMemcpyDeviceToHost), "copying the recurrent states out");
}

void DevRecurrentStates::copy_in(std::span<const uint8_t> in) {
  if (in.size() != bytes())
    fail_as(ErrorKind::Internal, "cuda backend: {} bytes of recurrent state for a session of {}", in.size(), bytes());
  if (!total_) return;
  check(cudaDeviceSynchronize(), "waiting for the device before copying the recurrent states in");
  check(cudaMemcpy(buf_, in.data(), bytes(), cudaMemcpyHostToDevice), "copying the recurrent states in");
}

}  // namespace moeflux::cuda
