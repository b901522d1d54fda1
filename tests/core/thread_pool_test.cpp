#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
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
