// Helpers for the storage I/O tests: temp files with known content, aligned
// destinations with guard bytes, one engine per mode.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "experts/io/io_engine.h"

namespace moeflux::iotest {

// Byte i of a test file made with `seed`: position-dependent, so that a read
// from the wrong offset cannot pass by accident.
inline uint8_t content_byte(uint64_t i, uint32_t seed) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t(seed) << 32);
  x ^= x >> 29;
  return uint8_t(x * 0xBF58476D1CE4E5B9ull >> 56);
}

inline std::vector<uint8_t> make_content(uint64_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  for (uint64_t i = 0; i < size; ++i) v[i] = content_byte(i, seed);
  return v;
}

// A scratch directory under $MOEFLUX_IO_TEST_DIR or the temp dir, removed
// at destruction. Where that is tmpfs the O_DIRECT modes fall back to the
// page cache (logged), and the tests still hold.
class ScratchDir {
 public:
  ScratchDir() {
    std::string base = std::filesystem::temp_directory_path().string();
    if (const char* d = std::getenv("MOEFLUX_IO_TEST_DIR")) base = d;
    std::string tmpl = base + "/moeflux-io-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed in " + base);
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) throw std::runtime_error("write failed: " + path);
    done += size_t(n);
  }
  close(fd);
}

constexpr uint8_t kGuard = 0xA5;

// Aligned memory filled with kGuard, so that writes outside a room show.
class AlignedBuf {
 public:
  explicit AlignedBuf(size_t n) : size_(n) {
    void* p = std::aligned_alloc(kIoAlign, io_align_up(n ? n : 1));
    if (!p) throw std::bad_alloc();
    p_.reset(static_cast<uint8_t*>(p));
    std::memset(p, kGuard, size_);
  }
  uint8_t* data() const { return p_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> p_;
  size_t size_;
};

inline ReadRequest req(IoFileId file, uint64_t offset, uint64_t length, void* dst, uint64_t tag = 0) {
  ReadRequest r;
  r.file = file;
  r.offset = offset;
  r.length = length;
  r.dst = dst;
  r.tag = tag;
  return r;
}

inline const std::vector<IoMode>& all_modes() {
  static const std::vector<IoMode> m{IoMode::kDirect, IoMode::kPread, IoMode::kBuffered, IoMode::kMmap};
  return m;
}

inline std::unique_ptr<IoEngine> engine(IoMode mode, int qd = 8, std::vector<std::string>* log = nullptr) {
  IoOptions o;
  o.mode = mode;
  o.queue_depth = qd;
  o.log = [log](const std::string& s) {
    if (log) log->push_back(s);
  };
  return make_io_engine(o);
}

// Whether bytes [0, n) of `got` equal the file content from `offset`;
// returns the first differing index or -1.
inline int64_t first_mismatch(const uint8_t* got, const std::vector<uint8_t>& file, uint64_t offset, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    if (got[i] != file[offset + i]) return int64_t(i);
  return -1;
}

}  // namespace moeflux::iotest
