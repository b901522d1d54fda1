#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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

// An exception from any thread's piece reaches the caller only once every
// thread has stopped (the others read the function and its captures), no
// further pieces are handed out after it, and the pool stays usable.
TEST(ThreadPool, ExceptionReachesTheCallerAfterEveryThreadStops) {
  ThreadPool pool(3);
  for (size_t thrower : {0u, 1u, 5u}) {
    std::atomic<int> ran{0}, running{0};
    try {
      pool.parallel_for(6, 1, [&](size_t b, size_t) {
        running++;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        running--;
        if (b == thrower) throw std::runtime_error("piece");
        ran++;
      });
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error&) {
      EXPECT_EQ(running.load(), 0);
    }
    EXPECT_LE(ran.load(), 5);
  }
  std::atomic<long> sum{0};
  pool.parallel_for(9, 1, [&](size_t b, size_t e) { sum += long(e - b); });
  EXPECT_EQ(sum.load(), 9);
}

// Pieces are taken as threads come free and start at a share of what is
// left, so a thread stalled in its first piece holds a quarter of a loop on
// 2 threads (a fixed split would tie half of it to the stalled thread),
// and the other thread does everything else meanwhile.
TEST(ThreadPool, StalledPieceLeavesTheRestToOtherThreads) {
  ThreadPool pool(2);
  const size_t n = 64;
  std::atomic<size_t> others{0}, first_piece{0};
  std::atomic<bool> saw_all{false};
  pool.parallel_for(n, 1, [&](size_t b, size_t e) {
    if (b != 0) {
      others += e - b;
      return;
    }
    first_piece = e - b;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (others.load() < n - e && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    saw_all = others.load() == n - e;
  });
  EXPECT_TRUE(saw_all.load());
  EXPECT_LE(first_piece.load(), n / 4);
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
