#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace moeflux {

namespace {

// Every live MappedFile with a map, for holding(). Updated on open, move
// and close; looked up at load time only, so a mutex and a scan will do.
std::mutex g_registry_mu;
std::vector<const MappedFile*> g_registry;

void registry_add(const MappedFile* f) {
  std::lock_guard lk(g_registry_mu);
  g_registry.push_back(f);
}

void registry_replace(const MappedFile* from, const MappedFile* to) {
  std::lock_guard lk(g_registry_mu);
  auto it = std::find(g_registry.begin(), g_registry.end(), from);
  if (it == g_registry.end()) return;
  if (to) *it = to;
  else g_registry.erase(it);
}

bool same_time(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail("cannot open {}: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    fail("cannot stat {}: {}", path, std::strerror(e));
  }
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  mtime_ = st.st_mtim;
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd_);
      fd_ = -1;
      fail("cannot map {} ({} bytes): {}", path, size_, std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
    registry_add(this);
  }
}

MappedFile::~MappedFile() { reset(); }

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)),
      data_(o.data_),
      size_(o.size_),
      fd_(o.fd_),
      dev_(o.dev_),
      ino_(o.ino_),
      mtime_(o.mtime_),
      guard_(o.guard_.exchange(nullptr)) {
  if (data_) registry_replace(&o, this);
  o.data_ = nullptr;
  o.size_ = 0;
  o.fd_ = -1;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    reset();
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    fd_ = o.fd_;
    dev_ = o.dev_;
    ino_ = o.ino_;
    mtime_ = o.mtime_;
    guard_.store(o.guard_.exchange(nullptr));
    if (data_) registry_replace(&o, this);
    o.data_ = nullptr;
    o.size_ = 0;
    o.fd_ = -1;
  }
  return *this;
}

void MappedFile::reset() {
  if (data_) registry_replace(this, nullptr);
  // The guard goes before the map: a fault at these addresses after the
  // unmap would be somebody else's.
  delete guard_.exchange(nullptr);
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
  data_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

void MappedFile::read(uint64_t offset, void* dst, size_t n) const {
  if (fd_ < 0 && n > 0) fail("{}: not open", path_);
  auto* out = static_cast<uint8_t*>(dst);
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd_, out + done, n - done, off_t(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("{}: cannot read {} bytes at offset {}: {}", path_, n, offset, std::strerror(errno));
    if (r == 0) {
      struct stat st {};
      const uint64_t now = ::fstat(fd_, &st) == 0 ? uint64_t(st.st_size) : 0;
      fail("{} changed since it was opened: {} bytes at offset {} are past its end (now {} bytes, {} when opened)",
           path_, n, offset, now, size_);
    }
    done += size_t(r);
  }
}

std::string MappedFile::changed() const {
  if (const uint64_t at = fault_offset(); at != MappingGuard::kNoFault)
    return fmt::format("a read of its memory map faulted at offset {}: the file shrank or could not be read", at);
  if (fd_ < 0) return "";
  struct stat now {}, named {};
  if (::fstat(fd_, &now) != 0) return fmt::format("fstat failed: {}", std::strerror(errno));
  if (::stat(path_.c_str(), &named) != 0) return fmt::format("path no longer opens: {}", std::strerror(errno));
  if (named.st_dev != dev_ || named.st_ino != ino_)
    return fmt::format("replaced: the path now names inode {} (opened inode {})", named.st_ino, ino_);
  if (uint64_t(now.st_size) != size_) return fmt::format("size changed from {} to {} bytes", size_, now.st_size);
  if (!same_time(now.st_mtim, mtime_)) return "rewritten in place: its mtime changed";
  return "";
}

void MappedFile::guard() const {
  if (!data_ || guard_.load(std::memory_order_acquire)) return;
  auto* g = new MappingGuard(data_, size_);
  MappingGuard* expected = nullptr;
  if (!guard_.compare_exchange_strong(expected, g, std::memory_order_acq_rel)) delete g;  // another thread won
}

uint64_t MappedFile::fault_offset() const {
  const MappingGuard* g = guard_.load(std::memory_order_acquire);
  return g ? g->fault_offset() : MappingGuard::kNoFault;
}

const MappedFile* MappedFile::holding(const void* p) {
  const auto* b = static_cast<const uint8_t*>(p);
  std::lock_guard lk(g_registry_mu);
  for (const MappedFile* f : g_registry)
    if (b >= f->data_ && b < f->data_ + f->size_) return f;
  return nullptr;
}

}  // namespace moeflux
