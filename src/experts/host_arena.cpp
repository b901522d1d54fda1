#include "experts/host_arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/progress.h"

namespace moeflux {

HostArena::HostArena(size_t slots, size_t slot_bytes, bool prefault)
    : slots_(slots), stride_((slot_bytes + 4095) & ~size_t(4095)) {
  if (slots_ == 0) return;
  void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    fail("cannot reserve {} for {} expert slots: {}", human_bytes(bytes()), slots_, std::strerror(errno));
  // Huge pages where the kernel allows: fewer TLB misses when the kernels
  // stream an expert.
  ::madvise(p, bytes(), MADV_HUGEPAGE);
  base_ = static_cast<uint8_t*>(p);
  if (prefault) {
#ifdef MADV_POPULATE_WRITE
    if (::madvise(p, bytes(), MADV_POPULATE_WRITE) == 0) return;
    if (errno == ENOMEM || errno == EFAULT || errno == EHWPOISON) {
      ::munmap(p, bytes());
      base_ = nullptr;
      fail("cannot commit {} of RAM for {} expert slots: {}; give a smaller --expert-ram", human_bytes(bytes()),
           slots_, std::strerror(errno));
    }
#endif
    // Kernels before 5.14: one write per page faults it in.
    for (size_t off = 0; off < bytes(); off += 4096) base_[off] = 0;
  }
}

HostArena::~HostArena() {
  if (base_) ::munmap(base_, bytes());
}

}  // namespace moeflux
