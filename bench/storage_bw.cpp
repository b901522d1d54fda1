// Storage read bandwidth per I/O mode, request size and queue depth: the
// storage floor of BENCHMARKS.md, measured through the same engine the
// expert store reads with.
//
//   bench_storage_bw FILE [--create 6G] [--remove] [--mode direct,buffered]
//       [--size 64K,1M] [--qd 1,8,32] [--seconds 5] [--unaligned]
//
// Each run keeps `qd` requests in flight (qd threads, each with one request
// outstanding, as concurrent store clients would), at random offsets drawn
// without replacement over the file, so that no run reads a range twice.
// Cold means cold: O_DIRECT modes bypass the page cache by construction;
// before buffered and mmap runs the file is dropped from the page cache
// (fdatasync + POSIX_FADV_DONTNEED), and draws without replacement keep a run
// from hitting pages it read itself.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "experts/io/io_engine.h"

using namespace moeflux;
using Clock = std::chrono::steady_clock;

namespace {

uint64_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  uint64_t mult = 1;
  switch (end && *end ? std::toupper(*end) : 0) {
    case 0: break;
    case 'K': mult = 1ull << 10; break;
    case 'M': mult = 1ull << 20; break;
    case 'G': mult = 1ull << 30; break;
    default: fail("bad size '{}' (use e.g. 64K, 1M, 6G)", s);
  }
  if (!(v > 0)) fail("bad size '{}'", s);
  return uint64_t(v * double(mult));
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; (e = s.find(',', b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
  out.push_back(s.substr(b));
  return out;
}

std::string human(uint64_t n) {
  if (n % (1ull << 30) == 0) return fmt::format("{}G", n >> 30);
  if (n % (1ull << 20) == 0) return fmt::format("{}M", n >> 20);
  if (n % (1ull << 10) == 0) return fmt::format("{}K", n >> 10);
  return std::to_string(n);
}

void drop_from_page_cache(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", path, strerror(errno));
  fdatasync(fd);  // dirty pages cannot be dropped
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

// Pseudo-random content (not zeros: some virtual disks compress or skip them).
void create_file(const std::string& path, uint64_t size) {
  fmt::print("creating {} ({} bytes)...\n", path, size);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {}: {}", path, strerror(errno));
  std::vector<uint64_t> chunk((64 << 20) / 8);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (uint64_t done = 0; done < size;) {
    for (auto& w : chunk) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    const uint64_t n = std::min<uint64_t>(chunk.size() * 8, size - done);
    for (uint64_t w = 0; w < n;) {
      const ssize_t r = pwrite(fd, reinterpret_cast<char*>(chunk.data()) + w, n - w, off_t(done + w));
      if (r <= 0) fail("writing {}: {}", path, strerror(errno));
      w += uint64_t(r);
    }
    done += n;
  }
  fsync(fd);
  close(fd);
}

struct Result {
  double seconds = 0, gbps = 0, iops = 0, mean_ms = 0, p50_ms = 0, p99_ms = 0;
  uint64_t bytes = 0, reads = 0, errors = 0;
  std::string engine;
};

Result run(const std::string& path, IoMode mode, uint64_t size, int qd, double seconds, bool unaligned,
           uint64_t seed) {
  if (mode == IoMode::kBuffered || mode == IoMode::kMmap) drop_from_page_cache(path);
  IoOptions o;
  o.mode = mode;
  o.queue_depth = qd;
  auto io = make_io_engine(o);
  const IoFileId file = io->add_file(path);
  const uint64_t fsize = io->file_size(file);
  if (fsize < size * 4) fail("{} ({} bytes) is too small for {}-byte requests", path, fsize, size);

  // Slots of `size` bytes (plus up to a block of slack for unaligned
  // offsets), shuffled: each thread takes the next one, none twice.
  const uint64_t stride = size + (unaligned ? kIoAlign : 0);
  const uint64_t slots = (fsize - kIoAlign) / stride;
  std::vector<uint64_t> order(slots);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::atomic<uint64_t> next{0};

  std::vector<std::vector<double>> lat(static_cast<size_t>(qd));
  std::vector<uint64_t> bytes(static_cast<size_t>(qd)), errors(static_cast<size_t>(qd));
  std::string first_error;
  std::mutex err_mu;
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < qd; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 r(seed * 1000 + uint64_t(t));
      void* buf = std::aligned_alloc(kIoAlign, io_room(kIoAlign - 1, size));
      while (Clock::now() < deadline) {
        const uint64_t k = next.fetch_add(1);
        if (k >= slots) break;  // the whole file was read once: stop early
        const uint64_t off = order[k] * stride + (unaligned ? r() % kIoAlign : 0);
        ReadRequest q;
        q.file = file;
        q.offset = off;
        q.length = size;
        q.dst = buf;
        const auto s = Clock::now();
        io->read_batch({&q, 1});
        lat[size_t(t)].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
        if (q.ok()) {
          bytes[size_t(t)] += size;
        } else {
          ++errors[size_t(t)];
          std::lock_guard lock(err_mu);
          if (first_error.empty()) first_error = q.message;
        }
      }
      std::free(buf);
    });
  }
  for (auto& th : threads) th.join();
  Result res;
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  for (int t = 0; t < qd; ++t) {
    res.bytes += bytes[size_t(t)];
    res.errors += errors[size_t(t)];
  }
  res.reads = all.size();
  res.gbps = double(res.bytes) / res.seconds / 1e9;
  res.iops = double(res.reads) / res.seconds;
  if (!all.empty()) {
    res.mean_ms = std::accumulate(all.begin(), all.end(), 0.0) / double(all.size());
    res.p50_ms = all[all.size() / 2];
    res.p99_ms = all[std::min(all.size() - 1, size_t(double(all.size()) * 0.99))];
  }
  res.engine = io->describe();
  if (res.errors) fmt::print(stderr, "{} failed reads, first: {}\n", res.errors, first_error);
  return res;
}

[[noreturn]] void usage() {
  fmt::print(stderr,
             "usage: bench_storage_bw FILE [--create SIZE] [--remove] [--mode direct,pread,buffered,mmap]\n"
             "                        [--size 64K,256K,1M,4M] [--qd 1,8,32] [--seconds 5] [--unaligned]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) usage();
  const std::string path = argv[1];
  std::vector<IoMode> modes{IoMode::kDirect};
  std::vector<uint64_t> sizes{1 << 20};
  std::vector<int> qds{32};
  double seconds = 5;
  uint64_t create = 0;
  bool remove = false, unaligned = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) usage();
      return std::string(argv[++i]);
    };
    if (a == "--mode") {
      modes.clear();
      for (auto& m : split(value())) modes.push_back(parse_io_mode(m));
    } else if (a == "--size") {
      sizes.clear();
      for (auto& s : split(value())) sizes.push_back(parse_bytes(s));
    } else if (a == "--qd") {
      qds.clear();
      for (auto& q : split(value())) qds.push_back(std::max(1, std::atoi(q.c_str())));
    } else if (a == "--seconds") {
      seconds = std::atof(value().c_str());
    } else if (a == "--create") {
      create = parse_bytes(value());
    } else if (a == "--remove") {
      remove = true;
    } else if (a == "--unaligned") {
      unaligned = true;
    } else {
      usage();
    }
  }
  struct stat st {};
  if (create && (stat(path.c_str(), &st) != 0 || uint64_t(st.st_size) < create)) create_file(path, create);

  fmt::print("file {}  offsets {}  {:.0f} s per run\n", path, unaligned ? "random bytes" : "4 KiB-aligned", seconds);
  fmt::print("{:<9} {:>6} {:>4} {:>8} {:>9} {:>9} {:>9} {:>9}\n", "mode", "size", "qd", "GB/s", "IOPS", "mean ms",
             "p50 ms", "p99 ms");
  std::string last_engine;
  uint64_t seed = 1;
  for (IoMode m : modes)
    for (uint64_t s : sizes)
      for (int q : qds) {
        const Result r = run(path, m, s, q, seconds, unaligned, seed++);
        if (r.engine != last_engine) fmt::print("  engine: {}\n", r.engine);
        last_engine = r.engine;
        fmt::print("{:<9} {:>6} {:>4} {:>8.3f} {:>9.0f} {:>9.2f} {:>9.2f} {:>9.2f}{}\n", io_mode_name(m), human(s), q,
                   r.gbps, r.iops, r.mean_ms, r.p50_ms, r.p99_ms, r.errors ? fmt::format("  {} errors", r.errors) : "");
        std::fflush(stdout);
      }
  if (remove && unlink(path.c_str()) == 0) fmt::print("removed {}\n", path);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
