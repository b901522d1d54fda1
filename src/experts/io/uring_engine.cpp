// direct mode: io_uring with O_DIRECT fds. One thread owns the ring (an
// io_uring is not safe for concurrent submitters); other threads hand it
// operations through a locked queue and wake it with an eventfd that the
// ring itself has a read pending on, so the owner sleeps in exactly one
// place — waiting for completions — and a new submission costs no polling
// latency.
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>

#include "core/error.h"
#include "experts/io/engine_base.h"

namespace moeflux::detail {

namespace {

constexpr uint64_t kEventTag = 0;  // user_data of the eventfd read; ops are non-null pointers

class UringEngine final : public EngineBase {
 public:
  explicit UringEngine(const IoOptions& o) : EngineBase(o, true, false), qd_(std::clamp(o.queue_depth, 1, 4096)) {
    // Lets a user (and the tests) take the fallback path on a machine where
    // io_uring works.
    if (const char* e = std::getenv("MOEFLUX_IO_NO_URING"); e && *e && std::strcmp(e, "0") != 0)
      fail("io_uring disabled by MOEFLUX_IO_NO_URING");
    // +1 entry: the eventfd read is always pending beside up to qd_ reads.
    const int e = io_uring_queue_init(unsigned(qd_ + 1), &ring_, 0);
    if (e < 0) fail("io_uring_queue_init: {}", strerror(-e));
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    const bool has_read = probe && io_uring_opcode_supported(probe, IORING_OP_READ);
    if (probe) io_uring_free_probe(probe);
    if (!has_read) {
      io_uring_queue_exit(&ring_);
      fail("io_uring has no IORING_OP_READ (kernel older than 5.6)");
    }
    efd_ = eventfd(0, EFD_CLOEXEC);
    if (efd_ < 0) {
      const int err = errno;
      io_uring_queue_exit(&ring_);
      fail("eventfd: {}", strerror(err));
    }
    thread_ = std::thread([this] { loop(); });
  }

  ~UringEngine() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    kick();
    thread_.join();
    io_uring_queue_exit(&ring_);
    close(efd_);
  }

  IoMode mode() const override { return IoMode::kDirect; }
  std::string describe() const override {
    return fmt::format("direct: io_uring with O_DIRECT, queue depth {}", qd_);
  }

 protected:
  void dispatch(std::vector<std::unique_ptr<ReadOp>> ops) override {
    {
      std::lock_guard lock(mu_);
      for (auto& op : ops) incoming_.push_back(std::move(op));
    }
    kick();
  }

 private:
  void kick() {
    const uint64_t one = 1;
    // Fails only if the counter would overflow, and then a wake-up is
    // pending anyway.
    [[maybe_unused]] ssize_t n = write(efd_, &one, sizeof one);
  }

  void arm_eventfd() {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, efd_, &efd_buf_, sizeof efd_buf_, 0);
    io_uring_sqe_set_data64(sqe, kEventTag);
  }

  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (!sqe) {  // the SQ is full of prepared entries: hand them over
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  using Clock = std::chrono::steady_clock;

  void loop() {
    arm_eventfd();
    std::deque<std::unique_ptr<ReadOp>> ready;
    std::vector<std::pair<Clock::time_point, std::unique_ptr<ReadOp>>> delayed;
    int inflight = 0;
    for (;;) {
      bool stopping;
      {
        std::lock_guard lock(mu_);
        while (!incoming_.empty()) {
          ready.push_back(std::move(incoming_.front()));
          incoming_.pop_front();
        }
        stopping = stop_;
      }
      const auto now = Clock::now();
      for (size_t i = 0; i < delayed.size();) {
        if (delayed[i].first <= now) {
          ready.push_back(std::move(delayed[i].second));
          delayed[i] = std::move(delayed.back());
          delayed.pop_back();
        } else {
          ++i;
        }
      }

      while (inflight < qd_ && !ready.empty()) {
        std::unique_ptr<ReadOp> op = std::move(ready.front());
        ready.pop_front();
        const ReadCall call = op->next_call();
        if (!op->hooked) {
          consult_hook(*op, call);
          op->hooked = true;
          if (op->fault.delay.count() > 0) {
            delayed.emplace_back(now + op->fault.delay, std::move(op));
            continue;
          }
        }
        if (op->fault.error > 0) {  // injected: completes without a syscall
          const int64_t res = -int64_t(op->fault.error);
          on_result(std::move(op), res, call.len, ready);
          continue;
        }
        op->call_len = call.len;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_read(sqe, call.fd, call.addr, unsigned(call.len), call.offset);
        io_uring_sqe_set_data(sqe, op.release());
        ++inflight;
      }

      if (stopping && inflight == 0 && ready.empty() && delayed.empty()) {
        std::lock_guard lock(mu_);
        if (incoming_.empty()) return;
        continue;
      }

      // Wait for a completion (a read or a wake-up), or for the earliest
      // delayed op; never longer than a second, as a guard against a lost
      // wake-up.
      auto wait = std::chrono::nanoseconds(std::chrono::seconds(1));
      for (auto& d : delayed) wait = std::min<std::chrono::nanoseconds>(wait, d.first - now);
      if (!ready.empty() && inflight < qd_) wait = std::chrono::nanoseconds(0);
      __kernel_timespec ts{};
      ts.tv_sec = wait.count() > 0 ? wait.count() / 1000000000 : 0;
      ts.tv_nsec = wait.count() > 0 ? wait.count() % 1000000000 : 0;
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);

      while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
        const uint64_t data = io_uring_cqe_get_data64(cqe);
        const int64_t res = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        if (data == kEventTag) {
          arm_eventfd();
          continue;
        }
        --inflight;
        std::unique_ptr<ReadOp> op(reinterpret_cast<ReadOp*>(data));
        const uint64_t asked = op->call_len;
        on_result(std::move(op), res, asked, ready);
      }
    }
  }

  void on_result(std::unique_ptr<ReadOp> op, int64_t res, uint64_t asked, std::deque<std::unique_ptr<ReadOp>>& ready) {
    op->apply(res, asked, counters_);
    op->hooked = false;
    if (!op->finished()) {
      ready.push_front(std::move(op));  // continue a short read first: its batch is waiting
      return;
    }
    for (auto& r : finish(std::move(op))) ready.push_back(std::move(r));
  }

  const int qd_;
  io_uring ring_{};
  int efd_ = -1;
  uint64_t efd_buf_ = 0;  // target of the pending eventfd read
  std::mutex mu_;
  std::deque<std::unique_ptr<ReadOp>> incoming_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<IoEngine> make_uring_engine(const IoOptions& o) { return std::make_unique<UringEngine>(o); }

}  // namespace moeflux::detail
