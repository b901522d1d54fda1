#include "core/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace moeflux {

namespace {

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

struct Fd {
  int fd;
  ~Fd() { ::close(fd); }
};

}  // namespace

std::string read_small_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  // stat first: opening a FIFO for reading blocks until a writer appears.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("{} {}: cannot open: {}", what, path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{} {}: is {}, expected a regular file", what, path, kind_of(st.st_mode));
  // O_NONBLOCK: should the path be swapped for a FIFO after the stat, the
  // open still returns; fstat below then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("{} {}: cannot open: {}", what, path, std::strerror(errno));
  Fd guard{fd};
  if (::fstat(fd, &st) != 0) fail("{} {}: cannot stat: {}", what, path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{} {}: is {}, expected a regular file", what, path, kind_of(st.st_mode));
  if (uint64_t(st.st_size) > max_bytes)
    fail("{} {}: {} bytes, more than the {} bytes such a file can sensibly have", what, path, st.st_size, max_bytes);
  std::string out;
  out.resize(size_t(st.st_size));
  size_t got = 0;
  // Reads until EOF, but never past max_bytes, even if the file grows.
  for (;;) {
    if (got == out.size()) {
      if (out.size() >= max_bytes + 1) break;
      out.resize(std::min<uint64_t>(max_bytes + 1, std::max<uint64_t>(4096, out.size() * 2)));
    }
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("{} {}: read failed: {}", what, path, std::strerror(errno));
    }
    if (n == 0) break;
    got += size_t(n);
  }
  if (got > max_bytes) fail("{} {}: grew past {} bytes while being read", what, path, max_bytes);
  out.resize(got);
  return out;
}

}  // namespace moeflux
