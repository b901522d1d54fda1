#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace moeflux;

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  ThreadPool pool(4);
  for (size_t n : {1u, 2u, 3u, 5u, 7u, 64u, 1001u}) {
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, 1, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) hits[i]++;
    });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPool, ManySmallJobsInARow) {
  ThreadPool pool(3);
  std::atomic<long> sum{0};
  for (int r = 0; r < 2000; ++r)
    pool.parallel_for(10, 1, [&](size_t b, size_t e) { sum += long(e - b); });
  EXPECT_EQ(sum.load(), 20000);
}

// An exception from the caller's own chunk reaches the caller only after the
// workers are done with the job (they read the function and its captures),
// and the pool stays usable.
TEST(ThreadPool, CallerExceptionWaitsForWorkers) {
  ThreadPool pool(3);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.parallel_for(3, 1,
                                 [&](size_t b, size_t) {
                                   if (b == 0) throw std::runtime_error("chunk 0");
                                   ran++;
                                 }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 2);
  std::atomic<long> sum{0};
  pool.parallel_for(9, 1, [&](size_t b, size_t e) { sum += long(e - b); });
  EXPECT_EQ(sum.load(), 9);
}

// Workers that went to sleep after the spin still wake for the next job.
TEST(ThreadPool, WakesAfterSleeping) {
  ThreadPool pool(2);
  for (int r = 0; r < 3; ++r) {
    std::this_thread::sleep_for(ThreadPool::kSpin * 4);
    std::atomic<int> chunks{0};
    pool.parallel_for(2, 1, [&](size_t, size_t) { chunks++; });
    EXPECT_EQ(chunks.load(), 2);
  }
}
