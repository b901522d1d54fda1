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
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moeflux {

class ThreadPool {
 public:
  explicit ThreadPool(int threads = 0);  // 0: all online cores
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end) over [0, n) split into contiguous chunks, one per
  // thread at most, each at least `grain` long. Blocks until all are done.
  // One caller at a time.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

  // How long a thread polls before it sleeps.
  static constexpr std::chrono::microseconds kSpin{300};

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  // Written by the caller before generation_ is bumped (release), read by
  // workers after they see the new generation (acquire).
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t job_n_ = 0, job_chunk_ = 0;
  int job_chunks_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace moeflux
