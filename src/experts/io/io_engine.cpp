#include "experts/io/io_engine.h"

#include <cstdio>

#include "core/error.h"
#include "experts/io/engine_base.h"

namespace moeflux {

const char* io_mode_name(IoMode m) {
  switch (m) {
    case IoMode::kDirect: return "direct";
    case IoMode::kPread: return "pread";
    case IoMode::kBuffered: return "buffered";
    case IoMode::kMmap: return "mmap";
  }
  return "?";
}

IoMode parse_io_mode(const std::string& s) {
  for (IoMode m : {IoMode::kDirect, IoMode::kPread, IoMode::kBuffered, IoMode::kMmap})
    if (s == io_mode_name(m)) return m;
  fail("unknown I/O mode '{}' (direct, pread, buffered, mmap)", s);
}

bool IoEngine::read_batch(std::span<ReadRequest> requests) {
  wait(submit(requests));
  for (const ReadRequest& r : requests)
    if (!r.ok()) return false;
  return true;
}

std::unique_ptr<IoEngine> make_io_engine(const IoOptions& options) {
  IoOptions o = options;
  if (!o.log) o.log = [](const std::string& line) { std::fprintf(stderr, "moeflux io: %s\n", line.c_str()); };
  if (o.mode != IoMode::kDirect) return detail::make_pool_engine(o, "");
  try {
    return detail::make_uring_engine(o);
  } catch (const Error& e) {
    if (!o.allow_fallback) throw;
    // seccomp profiles (Docker's default before 2023, gVisor) and
    // kernel.io_uring_disabled make io_uring_setup fail with EPERM/ENOSYS;
    // threads doing pread on the same O_DIRECT fds reach the same bandwidth
    // at the cost of a thread per read in flight.
    const std::string why = fmt::format("io_uring unavailable: {}", e.what());
    o.log(fmt::format("{}; falling back to pread with O_DIRECT on {} threads", why, o.queue_depth));
    return detail::make_pool_engine(o, why);
  }
}

}  // namespace moeflux
