#include "core/thread_pool.h"

#include "core/error.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace moeflux {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// MOEFLUX_POOL_SPIN_US overrides kSpin (0: sleep at once), for A/B runs.
std::chrono::microseconds spin_time() {
  static const std::chrono::microseconds t = [] {
    const char* e = std::getenv("MOEFLUX_POOL_SPIN_US");
    return e ? std::chrono::microseconds(std::atoll(e)) : ThreadPool::kSpin;
  }();
  return t;
}

// Polls done() for up to spin_time(); whether it turned true.
template <class Done>
bool spin_until(Done done) {
  const auto spin = spin_time();
  if (spin.count() == 0) return done();
  const auto until = std::chrono::steady_clock::now() + spin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return done();
  }
}

}  // namespace

int ThreadPool::max_threads() { return kThreadsPerCore * int(std::max(1u, std::thread::hardware_concurrency())); }

ThreadPool::ThreadPool(int threads) {
  if (threads > max_threads())
    fail("{} threads asked for: at most {} ({} per online core) are allowed", threads, max_threads(), kThreadsPerCore);
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lk(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] { return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(ready)) {
      // The caller bumps generation_ under mu_, so the check under the lock
      // cannot miss a wake-up.
      std::unique_lock lk(mu_);
      wake_.wait(lk, ready);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_pieces();
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Taken so that a caller between its check and its wait hears this.
      std::lock_guard lk(mu_);
      done_.notify_one();
    }
  }
}

void ThreadPool::run_pieces() {
  for (;;) {
    size_t b = next_.load(std::memory_order_relaxed), e;
    do {
      if (b >= job_n_) return;
      const size_t left = job_n_ - b;
      e = b + std::min(left, std::max(job_grain_, left / (2 * size_t(size()))));
    } while (!next_.compare_exchange_weak(b, e, std::memory_order_relaxed));
    try {
      (*job_)(b, e);
    } catch (...) {
      // The first error ends the loop: no further pieces are handed out,
      // and the caller rethrows it once every thread has stopped.
      std::lock_guard lk(mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(job_n_, std::memory_order_relaxed);
      return;
    }
  }
}

void ThreadPool::parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  if (n <= grain || workers_.empty()) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  next_.store(0, std::memory_order_relaxed);
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard lk(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  // glibc skips the system call when no worker sleeps.
  wake_.notify_all();
  run_pieces();
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done)) {
    std::unique_lock lk(mu_);
    done_.wait(lk, done);
  }
  job_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace moeflux
