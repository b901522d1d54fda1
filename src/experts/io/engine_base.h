// What every engine shares: the file table, turning a submitted batch into
// (merged) read operations, the retry rules of one operation, and turning a
// finished operation into per-request results. The backends (io_uring, the
// thread pool) only decide how and where the read calls run.
#pragma once
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "experts/io/file_table.h"
#include "experts/io/io_engine.h"

namespace moeflux::detail {

struct Batch {
  std::span<ReadRequest> reqs;
  std::atomic<size_t> pending{0};  // operations not yet finished
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  bool done = false;  // under mu; set once every result is written
};

struct IoCounters {
  std::atomic<uint64_t> requests{0}, reads{0}, merged{0}, bytes_requested{0}, bytes_read{0}, short_reads{0},
      retries{0}, errors{0};
};

// One read call: file bytes [offset, offset + len) to addr through fd.
struct ReadCall {
  int fd = -1;
  uint8_t* addr = nullptr;
  uint64_t offset = 0, len = 0;
};

// One or more requests of a batch read with one range of the file, issued
// as one or more read calls (short reads continue where they stopped).
struct ReadOp {
  std::shared_ptr<Batch> batch;
  const IoFile* file = nullptr;
  std::vector<uint32_t> reqs;  // indices into batch->reqs, by offset
  uint64_t key = 0;            // file byte p goes to address key + p
  bool direct = false;         // aligned calls go through the O_DIRECT fd
  bool split = false;          // a piece of a merged read that failed: not split again
  uint64_t pos = 0;            // next file byte to read; [start, pos) are valid
  uint64_t need_end = 0;       // done when pos reaches it
  uint64_t read_end = 0;       // direct calls read up to here (block-aligned)
  int error = 0;               // errno of a failed call
  bool eof = false;            // a call returned 0 before need_end
  int soft_retries = 0;        // EINTR/EAGAIN in a row
  IoFault fault;               // of the call in flight
  bool hooked = false;         // fault holds the hook's verdict for the next call
  uint64_t call_len = 0;       // length the call in flight asked for

  bool finished() const { return error != 0 || eof || pos >= need_end; }
  ReadCall next_call() const;
  // Applies a call's result: bytes read, or -errno.
  void apply(int64_t res, uint64_t asked, IoCounters& c);
};

class EngineBase : public IoEngine {
 public:
  EngineBase(const IoOptions& o, bool direct_files, bool map_files);

  IoFileId add_file(const std::string& path) override { return files_.add(path); }
  std::string file_path(IoFileId file) const override;
  uint64_t file_size(IoFileId file) const override;
  std::vector<FileChange> check_files() const override { return files_.check(); }
  IoTicket submit(std::span<ReadRequest> requests) override;
  bool poll(const IoTicket& t) const override;
  void wait(const IoTicket& t) const override;
  bool wait_for(const IoTicket& t, std::chrono::milliseconds timeout) const override;
  IoStats stats() const override;
  void set_fault_hook(IoFaultHook* hook) override { hook_.store(hook, std::memory_order_release); }

 protected:
  // Takes the operations and runs them; each ends in finish().
  virtual void dispatch(std::vector<std::unique_ptr<ReadOp>> ops) = 0;
  // The hook's verdict for the op's next call (stored in op.fault).
  void consult_hook(ReadOp& op, const ReadCall& call);
  // Writes the results of a finished op, or splits a failed merged op into
  // one op per unfinished request, which it returns for dispatching.
  std::vector<std::unique_ptr<ReadOp>> finish(std::unique_ptr<ReadOp> op);

  IoOptions opt_;
  FileTable files_;
  IoCounters counters_;

 private:
  void fail_request(ReadRequest& r, const IoFile* f, int error, std::string cause);
  std::atomic<IoFaultHook*> hook_{nullptr};
};

std::unique_ptr<IoEngine> make_uring_engine(const IoOptions& o);  // throws Error if io_uring is unavailable
std::unique_ptr<IoEngine> make_pool_engine(const IoOptions& o, std::string why);

}  // namespace moeflux::detail
