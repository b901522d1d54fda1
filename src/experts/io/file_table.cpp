#include "experts/io/file_table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace moeflux::detail {

namespace {

bool same_time(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

// Whether O_DIRECT on this fd can honour the 4096-byte contract. statx
// reports the filesystem's real alignment needs (Linux 6.1+); an older
// kernel reports nothing and the successful open is all we know.
bool direct_alignment_ok(int fd, std::string& why) {
  struct statx sx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) != 0 || !(sx.stx_mask & STATX_DIOALIGN)) return true;
  if (sx.stx_dio_offset_align == 0) {
    why = "the filesystem does not support direct I/O on it";
    return false;
  }
  if (sx.stx_dio_offset_align > kIoAlign || sx.stx_dio_mem_align > kIoAlign) {
    why = fmt::format("direct I/O needs {}-byte offsets and {}-byte buffers, more than {}", sx.stx_dio_offset_align,
                      sx.stx_dio_mem_align, kIoAlign);
    return false;
  }
  return true;
}

}  // namespace

FileTable::FileTable(bool want_direct, bool want_map, Log log)
    : want_direct_(want_direct), want_map_(want_map), log_(std::move(log)) {}

FileTable::~FileTable() {
  for (auto& f : files_) {
    f->map_guard = MappingGuard();  // before the unmap: faults there are no longer ours
    if (f->map) munmap(const_cast<uint8_t*>(f->map), f->map_size);
    if (f->fd_direct >= 0) close(f->fd_direct);
    if (f->fd_buffered >= 0) close(f->fd_buffered);
  }
}

IoFileId FileTable::add(const std::string& path) {
  auto f = std::make_unique<IoFile>();
  f->path = path;
  f->fd_buffered = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_buffered < 0) fail("cannot open {}: {}", path, strerror(errno));
  struct stat st {};
  if (fstat(f->fd_buffered, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int e = errno;
    close(f->fd_buffered);
    fail("cannot read {}: {}", path, S_ISREG(st.st_mode) ? strerror(e) : "not a regular file");
  }
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->size = uint64_t(st.st_size);
  f->mtime = st.st_mtim;

  if (want_direct_) {
    // Reopen through /proc so both fds name the same inode even if the path
    // is replaced in between; the path itself where /proc is not mounted.
    const std::string self = fmt::format("/proc/self/fd/{}", f->fd_buffered);
    int fd = open(self.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0 && errno == ENOENT) fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    std::string why;
    // Takes the no-O_DIRECT path on a filesystem that has O_DIRECT (tests,
    // or to compare); like tmpfs before Linux 6.6 does by itself.
    if (const char* e = std::getenv("MOEFLUX_IO_NO_ODIRECT"); fd >= 0 && e && *e && std::strcmp(e, "0") != 0) {
      close(fd);
      fd = -1;
      errno = EINVAL;
    }
    if (fd < 0) {
      why = fmt::format("open with O_DIRECT failed: {}", strerror(errno));
    } else {
      struct stat sd {};
      if (fstat(fd, &sd) != 0 || sd.st_ino != st.st_ino || sd.st_dev != st.st_dev)
        why = "the path changed while it was being opened";
      else if (direct_alignment_ok(fd, why))
        f->fd_direct = fd;
      if (f->fd_direct < 0) close(fd);
    }
    if (f->fd_direct < 0 && log_) log_(fmt::format("{}: {}; reading it through the page cache", path, why));
  }

  if (want_map_ && f->size > 0) {
    void* p = mmap(nullptr, f->size, PROT_READ, MAP_SHARED, f->fd_buffered, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      if (f->fd_direct >= 0) close(f->fd_direct);
      close(f->fd_buffered);
      fail("cannot map {}: {}", path, strerror(e));
    }
    f->map = static_cast<const uint8_t*>(p);
    f->map_size = f->size;
    f->map_guard = MappingGuard(p, f->size);
  }

  std::lock_guard lock(mu_);
  f->id = IoFileId(files_.size());
  files_.push_back(std::move(f));
  return files_.back()->id;
}

const IoFile* FileTable::find(IoFileId id) const {
  std::lock_guard lock(mu_);
  return id < files_.size() ? files_[id].get() : nullptr;
}

std::vector<FileChange> FileTable::check() const {
  std::vector<const IoFile*> files;
  {
    std::lock_guard lock(mu_);
    for (auto& f : files_) files.push_back(f.get());
  }
  std::vector<FileChange> out;
  for (const IoFile* f : files) {
    auto change = [&](std::string what) { out.push_back({f->id, f->path, std::move(what)}); };
    struct stat now {}, named {};
    if (fstat(f->fd_buffered, &now) != 0) {
      change(fmt::format("fstat failed: {}", strerror(errno)));
      continue;
    }
    if (stat(f->path.c_str(), &named) != 0) {
      change(fmt::format("path no longer opens: {}", strerror(errno)));
    } else if (named.st_dev != f->dev || named.st_ino != f->ino) {
      change(fmt::format("replaced: the path now names inode {} (opened inode {}), reads still see the old one",
                         named.st_ino, f->ino));
      continue;  // the open inode's own size/mtime are checked below only when it is still the named one
    }
    if (uint64_t(now.st_size) != f->size)
      change(fmt::format("size changed from {} to {} bytes", f->size, now.st_size));
    else if (!same_time(now.st_mtim, f->mtime))
      change("modified in place (mtime changed)");
  }
  return out;
}

}  // namespace moeflux::detail
