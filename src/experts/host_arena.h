// The host tier's memory: one anonymous mapping cut into equal slots, each
// 4096-aligned as O_DIRECT reads (and cudaHostRegister) want, allocated once
// at load so the budget is spent up front and never grows.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moeflux {

class HostArena {
 public:
  HostArena(size_t slots, size_t slot_bytes);
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
