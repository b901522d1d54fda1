// pread, buffered and mmap modes: a pool of threads, each running one read
// operation at a time with blocking calls. With N threads, N reads are in
// flight, which is how the pool matches io_uring's queue depth.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>

#include "core/error.h"
#include "experts/io/engine_base.h"

namespace moeflux::detail {

namespace {

class PoolEngine final : public EngineBase {
 public:
  PoolEngine(const IoOptions& o, std::string why)
      : EngineBase(o, o.mode == IoMode::kPread || o.mode == IoMode::kDirect, o.mode == IoMode::kMmap),
        mode_(o.mode == IoMode::kDirect ? IoMode::kPread : o.mode),
        why_(std::move(why)) {
    const int n = std::max(1, o.queue_depth);
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { worker(); });
  }

  ~PoolEngine() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  IoMode mode() const override { return mode_; }
  std::string describe() const override {
    std::string s = fmt::format("{}: {} threads", io_mode_name(mode_), threads_.size());
    if (mode_ == IoMode::kPread) s += ", pread with O_DIRECT";
    if (mode_ == IoMode::kBuffered) s += ", pread through the page cache";
    if (mode_ == IoMode::kMmap) s += ", memcpy from a shared read-only mapping";
    if (!why_.empty()) s += fmt::format(" ({})", why_);
    return s;
  }

 protected:
  void dispatch(std::vector<std::unique_ptr<ReadOp>> ops) override {
    {
      std::lock_guard lock(mu_);
      for (auto& op : ops) queue_.push_back(std::move(op));
    }
    if (ops.size() == 1)
      wake_.notify_one();
    else
      wake_.notify_all();
  }

 private:
  void worker() {
    for (;;) {
      std::unique_ptr<ReadOp> op;
      {
        std::unique_lock lock(mu_);
        // Stop only once the queue is empty: every op must finish, or a
        // waiter would hang on memory the engine still owns.
        wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        op = std::move(queue_.front());
        queue_.pop_front();
      }
      run(*op);
      auto retry = finish(std::move(op));
      if (!retry.empty()) dispatch(std::move(retry));
    }
  }

  void run(ReadOp& op) {
    while (!op.finished()) {
      const ReadCall call = op.next_call();
      consult_hook(op, call);
      if (op.fault.delay.count() > 0) std::this_thread::sleep_for(op.fault.delay);
      const int64_t res = op.fault.error > 0 ? -int64_t(op.fault.error) : read(op, call);
      op.apply(res, call.len, counters_);
    }
  }

  int64_t read(const ReadOp& op, const ReadCall& call) {
    if (mode_ == IoMode::kMmap) return copy_from_map(op, call);
    const ssize_t n = ::pread(call.fd, call.addr, call.len, off_t(call.offset));
    return n < 0 ? -int64_t(errno) : int64_t(n);
  }

  // A mapped page beyond the file's current end raises SIGBUS; so look at
  // the size first, and copy no further than it. A truncation between the
  // fstat and the copy makes the copy fault: the map is guarded (FileTable),
  // so the faulting loads read zeros, and a copy that overlapped them fails
  // with EIO (the store then names the file as changed).
  static int64_t copy_from_map(const ReadOp& op, const ReadCall& call) {
    struct stat st {};
    if (fstat(op.file->fd_buffered, &st) != 0) return -int64_t(errno);
    const uint64_t end = std::min<uint64_t>(uint64_t(st.st_size), op.file->map_size);
    if (call.offset >= end) return 0;
    const uint64_t n = std::min(call.len, end - call.offset);
    if (op.file->map_guard.fault_offset() < call.offset + n) return -EIO;  // those bytes are zeros now
    std::memcpy(call.addr, op.file->map + call.offset, n);
    if (op.file->map_guard.fault_offset() < call.offset + n) return -EIO;
    return int64_t(n);
  }

  const IoMode mode_;
  const std::string why_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<ReadOp>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<IoEngine> make_pool_engine(const IoOptions& o, std::string why) {
  return std::make_unique<PoolEngine>(o, std::move(why));
}

}  // namespace moeflux::detail
