// Several threads using one engine at once, as the decode thread and the
// prefetcher do: each submits its own batches, waits or polls, and checks
// every byte. Run it under ThreadSanitizer (-DMOEFLUX_TSAN=ON).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "experts/io/faulty_io.h"
#include "io_test_util.h"

using namespace moeflux;
using namespace moeflux::iotest;
using namespace std::chrono_literals;

namespace {

class ConcurrencyTest : public ::testing::TestWithParam<IoMode> {
 protected:
  void SetUp() override {
    for (uint32_t i = 0; i < 2; ++i) {
      paths_.push_back(dir_.file("f" + std::to_string(i)));
      contents_.push_back(make_content(kSize, 10 + i));
      write_bytes(paths_.back(), contents_.back());
    }
  }

  // One thread's work: `rounds` batches of random requests over both files,
  // half of them laid out mirrored in one slot so that they merge. Returns
  // the number of requests that failed with an injected EIO; any other
  // failure or wrong byte is a test failure.
  int client(IoEngine& io, const std::vector<IoFileId>& ids, int seed, int rounds, bool faults_on) {
    std::mt19937_64 rng{uint64_t(seed)};
    int injected = 0;
    for (int round = 0; round < rounds; ++round) {
      const size_t n = 1 + rng() % 12;
      std::vector<ReadRequest> reqs;
      std::vector<AlignedBuf> bufs;
      bufs.reserve(n + 1);
      const size_t f = rng() % ids.size();
      // A mirrored group: extents inside [base, base + 1 MiB) of file f.
      const uint64_t base = rng() % (kSize - (1 << 20));
      bufs.emplace_back(io_room(base, 1 << 20));
      uint8_t* slot = bufs.back().data() - io_align_down(base);
      for (size_t i = 0; i < n; ++i) {
        if (i % 2 == 0) {
          const uint64_t off = base + rng() % ((1 << 20) - 70'000);
          reqs.push_back(req(ids[f], off, 1 + rng() % 70'000, slot + io_align_down(off)));
          reqs.back().group = 1;
        } else {
          const size_t g = rng() % ids.size();
          const uint64_t len = 1 + rng() % (400 << 10);
          const uint64_t off = rng() % (kSize - len);
          bufs.emplace_back(io_room(off, len));
          reqs.push_back(req(ids[g], off, len, bufs.back().data()));
        }
      }
      // Overlapping extents of one mirrored slot must be in one submit;
      // they are, and rooms of other batches are private.
      const IoTicket t = io.submit(reqs);
      switch (round % 3) {
        case 0: io.wait(t); break;
        case 1:
          while (!io.poll(t)) std::this_thread::yield();
          break;
        default:
          while (!io.wait_for(t, 1ms)) {
          }
      }
      for (const ReadRequest& r : reqs) {
        if (!r.ok()) {
          EXPECT_TRUE(faults_on) << r.message;
          EXPECT_EQ(r.error, EIO) << r.message;
          ++injected;
          continue;
        }
        const size_t which = r.file == ids[0] ? 0 : 1;
        EXPECT_EQ(first_mismatch(r.data(), contents_[which], r.offset, r.length), -1)
            << "thread " << seed << " offset " << r.offset << " length " << r.length;
      }
    }
    return injected;
  }

  static constexpr uint64_t kSize = 16 << 20;
  ScratchDir dir_;
  std::vector<std::string> paths_;
  std::vector<std::vector<uint8_t>> contents_;
};

TEST_P(ConcurrencyTest, SubmittersOnManyThreads) {
  auto io = engine(GetParam(), 16);
  std::vector<IoFileId> ids;
  for (auto& p : paths_) ids.push_back(io->add_file(p));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { client(*io, ids, t + 1, 25, false); });
  // Meanwhile: registering more files and checking them.
  std::thread admin([&] {
    for (int i = 0; i < 20; ++i) {
      io->add_file(paths_[size_t(i) % 2]);
      EXPECT_TRUE(io->check_files().empty());
      (void)io->stats();
    }
  });
  for (auto& th : threads) th.join();
  admin.join();
  const IoStats s = io->stats();
  EXPECT_GT(s.merged, 0u);
  EXPECT_EQ(s.errors, 0u);
}

TEST_P(ConcurrencyTest, SubmittersWithFaults) {
  FaultyIo io(engine(GetParam(), 8));
  std::vector<IoFileId> ids;
  for (auto& p : paths_) ids.push_back(io.add_file(p));
  io.fail_every(7);
  io.short_reads(5000, 200);
  std::atomic<int> injected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) threads.emplace_back([&, t] { injected += client(io, ids, 100 + t, 20, true); });
  for (auto& th : threads) th.join();
  EXPECT_GT(injected.load(), 0);
  io.clear();
  EXPECT_EQ(client(io, ids, 999, 5, false), 0);
}

TEST_P(ConcurrencyTest, ManyThreadsWaitOnOneTicket) {
  auto io = engine(GetParam(), 4);
  const IoFileId f = io->add_file(paths_[0]);
  AlignedBuf buf(io_room(333, 3 << 20));
  ReadRequest r = req(f, 333, 3 << 20, buf.data());
  const IoTicket t = io->submit({&r, 1});
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i)
    waiters.emplace_back([&, i] {
      if (i % 2)
        io->wait(t);
      else
        while (!io->poll(t)) std::this_thread::yield();
      EXPECT_TRUE(r.ok()) << r.message;
      EXPECT_EQ(first_mismatch(r.data(), contents_[0], 333, 3 << 20), -1);
    });
  for (auto& w : waiters) w.join();
}

INSTANTIATE_TEST_SUITE_P(Modes, ConcurrencyTest, ::testing::ValuesIn(all_modes()),
                         [](const auto& info) { return std::string(io_mode_name(info.param)); });

}  // namespace
