// Keeps a read-only file mapping from killing the process when its file
// shrinks (or a page of it cannot be read) while it is in use.
//
// A load from a MAP_SHARED page that lies past the file's current end
// raises SIGBUS, whose default action kills the process. For a guarded
// mapping, a process-wide SIGBUS handler instead maps anonymous zero pages
// over the rest of the mapping, from the faulting page on (MAP_FIXED), and
// records the offset; the faulting load is restarted and reads zeros. The
// owner must then treat its bytes as void: it asks fault_offset() before it
// hands out (or after it copied) bytes, and reports the file as changed.
//
// Why this and not sigsetjmp/siglongjmp: the mapped bytes are read by the
// compute kernels on every pool thread; jumping out of a kernel half-way,
// on whichever thread faulted, would leave the pool and the op in an
// unknown state. Patching the page lets every thread run to completion on
// zeros, and the error is raised afterwards by ordinary code. The handler
// only calls mmap (a plain system call) and lock-free atomics.
//
// Faults outside guarded mappings (and signals sent by kill) go to the
// handler that was installed before, or to the default action, as if this
// handler did not exist.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moeflux {

class MappingGuard {
 public:
  static constexpr uint64_t kNoFault = UINT64_MAX;

  MappingGuard() = default;
  // Guards [base, base + size); base must be page-aligned (as mmap returns
  // it). Throws Error when every slot of the registry is taken.
  MappingGuard(const void* base, size_t size);
  ~MappingGuard();
  MappingGuard(MappingGuard&& o) noexcept : slot_(o.slot_) { o.slot_ = -1; }
  MappingGuard& operator=(MappingGuard&& o) noexcept;
  MappingGuard(const MappingGuard&) = delete;
  MappingGuard& operator=(const MappingGuard&) = delete;

  bool active() const { return slot_ >= 0; }
  // The lowest offset (page-aligned) from which the mapping now reads
  // zeros, or kNoFault while no load has faulted.
  uint64_t fault_offset() const;

 private:
  void release();
  int slot_ = -1;
};

}  // namespace moeflux
