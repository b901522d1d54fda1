// The host tier's memory: one anonymous mapping cut into equal slots, each
// 4096-aligned as O_DIRECT reads (and cudaHostRegister) want, allocated and
// faulted in once at load so the budget is spent up front and never grows.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moeflux {

class HostArena {
 public:
  // prefault: commit every page now. An O_DIRECT read into a page never
  // touched makes the kernel zero it first (2 MiB at a time with huge
  // pages) on the reading path, until every slot has been used once: in a
  // 57 GiB streaming bench a fifth of all CPU samples went there, most in
  // the first prefill. Committing at load also turns a budget the machine
  // cannot hold into an error at load instead of an OOM kill mid-run.
  HostArena(size_t slots, size_t slot_bytes, bool prefault = false);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  uint8_t* slot(size_t i) const { return base_ + i * stride_; }
  size_t slots() const { return slots_; }
  size_t stride() const { return stride_; }
  size_t bytes() const { return slots_ * stride_; }

 private:
  uint8_t* base_ = nullptr;
  size_t slots_, stride_;
};

}  // namespace moeflux
