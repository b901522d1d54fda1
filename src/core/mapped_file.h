// A read-only memory map of a whole file, RAII.
//
// The file stays open for the map's life, with the identity it had when it
// was opened (device, inode, size, mtime), so that its bytes can also be
// read with pread (never faulting: a file that shrank gives a short read
// and an Error) and a change of the file under the map can be reported.
// Reading through data() is only safe while the file keeps its size: a page
// past a shrunk file's end raises SIGBUS. Code that reads the map while the
// file may change (the engine serving experts in place) calls guard() first
// and asks changed() afterwards; see core/mapping_guard.h.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <span>
#include <string>

#include "core/mapping_guard.h"

namespace moeflux {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Copies [offset, offset + n) of the file into dst with pread on the open
  // file (the inode that is mapped, whatever the path names now). Throws
  // Error naming the file when it cannot, e.g. "changed since it was
  // opened" when the file is now shorter.
  void read(uint64_t offset, void* dst, size_t n) const;

  // Empty while the file is as it was opened; otherwise what changed:
  // a guarded load faulted, size, mtime (rewritten in place), or the path
  // now names another file or none. Two system calls (fstat, stat).
  std::string changed() const;

  // From now on a load from this map past the file's end reads zeros
  // instead of killing the process, and changed() reports it. Idempotent;
  // thread-safe.
  void guard() const;
  // Where a guarded load faulted (the map reads zeros from there on), or
  // MappingGuard::kNoFault. One atomic load: cheap enough for every step.
  uint64_t fault_offset() const;

  // The live MappedFile whose map holds p, or nullptr. For code that holds
  // pointers into maps (TensorRef::data) and needs the file behind them.
  // The result is valid as long as that MappedFile lives.
  static const MappedFile* holding(const void* p);

 private:
  void reset();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
  // Identity when opened.
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  timespec mtime_{};
  // Set once by guard(), owned; atomic because guard() and changed() may
  // run on different threads.
  mutable std::atomic<MappingGuard*> guard_{nullptr};
};

}  // namespace moeflux
