// The storage I/O layer under the expert store: reads extents of registered
// files into caller memory, many in flight, in one of four modes.
//
//   direct    io_uring + O_DIRECT: aligned covering reads straight into the
//             slot, up to queue_depth reads in flight, page cache bypassed.
//   pread     a pool of threads doing pread on O_DIRECT fds: the fallback
//             where io_uring is unavailable (seccomp, io_uring_disabled).
//   buffered  the same pool, pread through the page cache (comparison).
//   mmap      the same pool, memcpy from a read-only mapping (comparison).
//
// make_io_engine(direct) falls back to pread by itself when io_uring cannot
// be set up, and any O_DIRECT mode reads a file whose filesystem refuses
// O_DIRECT (tmpfs) through the page cache; both are logged once.
//
// Thread-safety: every method may be called from any thread at the same time
// (the decode thread and the prefetcher both submit). Rules for the caller:
//   - from submit() until the ticket is done, the request span and the
//     destination rooms belong to the engine: do not read, write or free them;
//   - rooms of requests in flight must not overlap (except mirrored requests
//     of one submit, which are merged, see read_request.h);
//   - the destructor waits for every read in flight; do not call it while
//     another thread still uses the engine.
// A ticket is a shared handle: copy it freely, wait on it from any thread.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "experts/io/read_request.h"

namespace moeflux {

enum class IoMode { kDirect, kPread, kBuffered, kMmap };

const char* io_mode_name(IoMode m);
IoMode parse_io_mode(const std::string& s);  // "direct" | "pread" | "buffered" | "mmap"; throws Error

struct IoOptions {
  IoMode mode = IoMode::kDirect;
  // Reads in flight: io_uring queue entries in direct mode, pool threads in
  // the other modes (so that --qd means the same thing in every mode).
  int queue_depth = 32;
  // Mirrored requests of one group whose file ranges are at most this far
  // apart are read with one read (see read_request.h).
  // Reading a 64 KiB hole costs ~60 us at 1 GB/s, about one read's latency.
  uint64_t merge_gap = 64 << 10;
  uint64_t max_merge = 16 << 20;  // one merged read is at most this long
  // direct: fall back to pread when io_uring cannot be set up (logged).
  bool allow_fallback = true;
  // Where fallback notices go; default: one line on stderr.
  std::function<void(const std::string&)> log;
};

// What a fault hook asks of one read call (see FaultyIo).
struct IoFault {
  int error = 0;                   // >0: the read fails with this errno
  uint64_t max_bytes = UINT64_MAX; // the read returns at most this many bytes
  std::chrono::microseconds delay{0};  // the read starts this much later
};

// Called before every read call an engine makes, retries included, on the
// engine's threads (so it must be thread-safe). offset/length are the file
// range that call asks for (already widened to blocks in direct mode).
class IoFaultHook {
 public:
  virtual ~IoFaultHook() = default;
  virtual IoFault before_read(IoFileId file, uint64_t offset, uint64_t length) = 0;
};

// Counters since construction; all modes fill them the same way.
struct IoStats {
  uint64_t requests = 0;       // requests submitted
  uint64_t reads = 0;          // read calls issued (after merging, with retries)
  uint64_t merged = 0;         // requests that shared a read with another one
  uint64_t bytes_requested = 0;
  uint64_t bytes_read = 0;     // from the file, alignment padding and holes included
  uint64_t short_reads = 0;    // reads that returned less than asked, then continued
  uint64_t retries = 0;        // EINTR/EAGAIN retried
  uint64_t errors = 0;         // requests that ended in kError
};

namespace detail {
struct Batch;
}

class IoTicket {
 public:
  IoTicket() = default;
  explicit IoTicket(std::shared_ptr<detail::Batch> b) : batch_(std::move(b)) {}
  bool valid() const { return batch_ != nullptr; }
  const std::shared_ptr<detail::Batch>& batch() const { return batch_; }

 private:
  std::shared_ptr<detail::Batch> batch_;
};

class IoEngine {
 public:
  virtual ~IoEngine() = default;

  // Opens a file once (O_DIRECT where the mode asks for it) and returns its
  // id for requests. Throws Error naming the path when it cannot be opened.
  virtual IoFileId add_file(const std::string& path) = 0;
  virtual std::string file_path(IoFileId file) const = 0;
  virtual uint64_t file_size(IoFileId file) const = 0;  // as opened

  // Compares each open file (fstat) with what its path names now (stat):
  // device, inode, size and mtime. Non-empty: the data read may be stale or
  // cut short; the store should refuse to serve from those files.
  virtual std::vector<FileChange> check_files() const = 0;

  // Starts the reads and returns at once. Results appear in the requests;
  // read them after poll() is true or wait() returns. Requests that break
  // the contract end in kError/EINVAL, like any other failed request.
  virtual IoTicket submit(std::span<ReadRequest> requests) = 0;
  virtual bool poll(const IoTicket& t) const = 0;
  virtual void wait(const IoTicket& t) const = 0;
  // false if not done within `timeout`; the reads stay in flight (the
  // destinations stay the engine's until the ticket is done).
  virtual bool wait_for(const IoTicket& t, std::chrono::milliseconds timeout) const = 0;

  // submit + wait. True when every request is kOk.
  bool read_batch(std::span<ReadRequest> requests);

  virtual IoMode mode() const = 0;
  // The mode actually running and why, e.g. "pread (io_uring unavailable: ...)".
  virtual std::string describe() const = 0;
  virtual IoStats stats() const = 0;

  // Installs (or with nullptr removes) a hook consulted before every read
  // call; for tests. Set it while no reads are in flight.
  virtual void set_fault_hook(IoFaultHook* hook) = 0;
};

std::unique_ptr<IoEngine> make_io_engine(const IoOptions& options = {});

}  // namespace moeflux
