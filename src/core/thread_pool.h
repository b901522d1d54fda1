// A fixed pool of worker threads for data-parallel loops. The calling thread
// takes part, so a pool of N threads keeps N cores busy with N-1 workers.
//
// Workers and the caller spin for a short while (kSpin) before sleeping on a
// condition variable: a decode step runs ~130 parallel loops of 20 µs to
// 2 ms each, and waking a sleeping thread through the kernel costs tens of µs
// on a VM, paid once per loop (llama.cpp's thread pool polls for the same
// reason). A pool idle for longer than kSpin costs no CPU.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moeflux {

class ThreadPool {
 public:
  // 0: all online cores. More than max_threads() is refused (Error): one
  // caller asked for 40,000 threads and made the machine unusable.
  explicit ThreadPool(int threads = 0);
  static constexpr int kThreadsPerCore = 4;
  static int max_threads();  // kThreadsPerCore x the online cores
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end) over [0, n) split into contiguous pieces, each at
  // least `grain` long (the last may be shorter), which the threads take
  // as they come free: each piece is 1 / (2 * size()) of what is left, so
  // the first are long (each thread streams through a long range) and the
  // last short (a thread slowed down, a vCPU the host took away for a
  // while, leaves the rest to the others instead of holding up the loop's
  // end; in prefill, the MoE work items of busy experts are longer than
  // the rest). Blocks until all are done; an exception from fn stops the
  // handing out of pieces and is rethrown here once every thread has
  // stopped. One caller at a time.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

  // How long a thread polls before it sleeps.
  static constexpr std::chrono::microseconds kSpin{300};

 private:
  void worker_loop();
  void run_pieces();  // takes pieces of the current job until none is left

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  // Written by the caller before generation_ is bumped (release), read by
  // workers after they see the new generation (acquire).
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t job_n_ = 0, job_grain_ = 0;
  std::atomic<size_t> next_{0};  // the first index not yet handed out
  std::exception_ptr error_;  // the first exception of the current job (under mu_)
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace moeflux
