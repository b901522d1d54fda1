// Faults, each injected below the engine's retry logic by FaultyIo or made
// for real on the file: every faulty request ends in an error that names the
// file and offset, the others in its batch complete, and the next request on
// the same engine succeeds.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <thread>

#include "experts/io/faulty_io.h"
#include "io_test_util.h"

using namespace moeflux;
using namespace moeflux::iotest;
using namespace std::chrono_literals;

namespace {

class FaultTest : public ::testing::TestWithParam<IoMode> {
 protected:
  void SetUp() override {
    path_ = dir_.file("experts.bin");
    content_ = make_content(kSize, 2);
    write_bytes(path_, content_);
    io_ = std::make_unique<FaultyIo>(engine(GetParam(), 8));
    file_ = io_->add_file(path_);
  }

  // One request of `len` bytes at `off` into a fresh buffer, read alone.
  ReadRequest read_one(uint64_t off, uint64_t len) {
    bufs_.emplace_back(io_room(off, len));
    ReadRequest r = req(file_, off, len, bufs_.back().data());
    io_->read_batch({&r, 1});
    return r;
  }

  void expect_good(const ReadRequest& r) {
    ASSERT_TRUE(r.ok()) << r.message;
    ASSERT_EQ(r.bytes_read, r.length);
    ASSERT_EQ(first_mismatch(r.data(), content_, r.offset, r.length), -1) << "offset " << r.offset;
  }

  // The engine is fine after a fault: clear the faults, read again.
  void expect_recovers() {
    io_->clear();
    expect_good(read_one(12345, 300000));
    expect_good(read_one(0, kSize));
  }

  static constexpr uint64_t kSize = (4 << 20) + 555;
  ScratchDir dir_;
  std::string path_;
  std::vector<uint8_t> content_;
  std::unique_ptr<FaultyIo> io_;
  IoFileId file_ = 0;
  std::deque<AlignedBuf> bufs_;
};

TEST_P(FaultTest, EioFailsOnlyTheRequestOnTheBadRange) {
  const uint64_t bad = 2'000'000;
  io_->fail_at(file_, bad);
  std::vector<ReadRequest> reqs;
  for (uint64_t off : {uint64_t(100000), bad - 1000, uint64_t(3000000), uint64_t(10)}) {
    bufs_.emplace_back(io_room(off, 50'000));
    reqs.push_back(req(file_, off, 50'000, bufs_.back().data()));
  }
  EXPECT_FALSE(io_->read_batch(reqs));
  EXPECT_EQ(reqs[1].status, ReadStatus::kError);
  EXPECT_EQ(reqs[1].error, EIO);
  EXPECT_NE(reqs[1].message.find(path_), std::string::npos) << reqs[1].message;
  EXPECT_NE(reqs[1].message.find("offset " + std::to_string(bad - 1000)), std::string::npos) << reqs[1].message;
  EXPECT_NE(reqs[1].message.find("length 50000"), std::string::npos) << reqs[1].message;
  for (int i : {0, 2, 3}) expect_good(reqs[size_t(i)]);
  EXPECT_GE(io_->injected().errors, 1u);
  expect_recovers();
}

TEST_P(FaultTest, EioInAMergedReadFailsOnlyTheRequestThatCoversIt) {
  // Three mirrored extents (one merged read); the bad byte is in the middle
  // one. The engine re-reads each alone after the merged read fails.
  const uint64_t offs[] = {40'000, 110'000, 180'000};
  AlignedBuf slot(io_room(offs[0], 250'000));
  std::vector<ReadRequest> reqs;
  for (uint64_t off : offs)
    reqs.push_back(req(file_, off, 60'000, slot.data() + io_align_down(off) - io_align_down(offs[0])));
  for (auto& r : reqs) r.group = 1;
  io_->fail_at(file_, 150'000);
  EXPECT_FALSE(io_->read_batch(reqs));
  EXPECT_GE(io_->stats().merged, 3u);
  expect_good(reqs[0]);
  EXPECT_EQ(reqs[1].error, EIO) << reqs[1].message;
  EXPECT_NE(reqs[1].message.find("offset 110000"), std::string::npos) << reqs[1].message;
  expect_good(reqs[2]);
  expect_recovers();
}

TEST_P(FaultTest, EveryNthReadFails) {
  io_->fail_every(3);
  std::vector<ReadRequest> reqs;
  for (int i = 0; i < 9; ++i) {
    const uint64_t off = uint64_t(i) * 400'000 + 7;  // far apart: one read each
    bufs_.emplace_back(io_room(off, 10'000));
    reqs.push_back(req(file_, off, 10'000, bufs_.back().data()));
  }
  EXPECT_FALSE(io_->read_batch(reqs));
  int failed = 0;
  for (auto& r : reqs) {
    if (r.ok()) {
      expect_good(r);
    } else {
      ++failed;
      EXPECT_EQ(r.error, EIO);
      EXPECT_NE(r.message.find(path_), std::string::npos);
    }
  }
  EXPECT_EQ(failed, 3);
  expect_recovers();
}

TEST_P(FaultTest, ShortReadsAreContinuedToTheEnd) {
  // Short by an odd count: the rest starts mid-block, which O_DIRECT cannot
  // read; the engine goes on through the buffered fd.
  io_->short_reads(10'001, 20);
  const IoStats before = io_->stats();
  expect_good(read_one(4097, 1'000'000));
  EXPECT_EQ(io_->injected().short_reads, 20u);
  EXPECT_GE(io_->stats().short_reads - before.short_reads, 20u);
  // Short on every call, aligned: the O_DIRECT path continues by itself.
  io_->short_reads(3 * kIoAlign);
  expect_good(read_one(5, 700'000));
  expect_good(read_one(kSize - 70'000, 70'000));
  expect_recovers();
}

TEST_P(FaultTest, SlowReadsCompleteAndWaitForTimesOut) {
  io_->slow_reads(300ms, 1);
  AlignedBuf buf(io_room(999, 123'456));
  ReadRequest r = req(file_, 999, 123'456, buf.data());
  const auto t0 = std::chrono::steady_clock::now();
  const IoTicket t = io_->submit({&r, 1});
  EXPECT_FALSE(io_->wait_for(t, 30ms));  // the timeout path: still in flight
  EXPECT_FALSE(io_->poll(t));
  // Others are not stuck behind the slow read (but in a 1-thread pool they
  // would be; this engine has 8 reads in flight).
  expect_good(read_one(5'000, 1000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
  io_->wait(t);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 290ms);
  expect_good(r);
  expect_recovers();
}

TEST_P(FaultTest, SimulatedTruncationIsAClearError) {
  io_->truncate(file_, 1'000'000);
  std::vector<ReadRequest> reqs;
  for (uint64_t off : {10ull, 990'000ull, 2'000'000ull}) {
    bufs_.emplace_back(io_room(off, 20'000));
    reqs.push_back(req(file_, off, 20'000, bufs_.back().data()));
  }
  EXPECT_FALSE(io_->read_batch(reqs));
  expect_good(reqs[0]);
  EXPECT_EQ(reqs[1].error, ENODATA);
  EXPECT_EQ(reqs[1].bytes_read, 10'000u);
  EXPECT_NE(reqs[1].message.find("ends at byte 1000000"), std::string::npos) << reqs[1].message;
  EXPECT_EQ(reqs[2].error, ENODATA);
  EXPECT_EQ(reqs[2].bytes_read, 0u);
  expect_recovers();
}

TEST_P(FaultTest, TruncatedFileIsAClearError) {
  ASSERT_EQ(truncate(path_.c_str(), 1'500'000), 0);
  const ReadRequest cut = read_one(1'490'000, 100'000);
  EXPECT_EQ(cut.status, ReadStatus::kError);
  EXPECT_EQ(cut.error, ENODATA);
  EXPECT_EQ(cut.bytes_read, 10'000u);
  EXPECT_NE(cut.message.find(path_), std::string::npos) << cut.message;
  EXPECT_NE(cut.message.find("offset 1490000"), std::string::npos) << cut.message;
  EXPECT_NE(cut.message.find("truncated"), std::string::npos) << cut.message;
  // What is left of the file still reads; check_files names the change.
  expect_good(read_one(1'000, 1'400'000));
  const auto changes = io_->check_files();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].path, path_);
  EXPECT_NE(changes[0].what.find("size changed"), std::string::npos) << changes[0].what;
}

TEST_P(FaultTest, ReplacedFileKeepsReadingTheOldInodeAndIsDetected) {
  // A new file renamed over the path (how tools rewrite files): the open fd
  // still names the old inode, so reads return the OLD bytes, silently.
  // check_files() is how the store finds out.
  const std::string other = dir_.file("new.bin");
  write_bytes(other, make_content(kSize, 77));
  ASSERT_EQ(rename(other.c_str(), path_.c_str()), 0);
  expect_good(read_one(4096 * 5 + 3, 200'000));  // old content
  const auto changes = io_->check_files();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].file, file_);
  EXPECT_NE(changes[0].what.find("replaced"), std::string::npos) << changes[0].what;
  // Registering the path again opens the new file.
  const IoFileId fresh = io_->add_file(path_);
  const auto next = make_content(kSize, 77);
  AlignedBuf buf(io_room(100, 5000));
  ReadRequest r = req(fresh, 100, 5000, buf.data());
  ASSERT_TRUE(io_->read_batch({&r, 1})) << r.message;
  EXPECT_EQ(first_mismatch(r.data(), next, 100, 5000), -1);
}

TEST_P(FaultTest, RemovedOrRewrittenFilesAreDetected) {
  const std::string second = dir_.file("second.bin");
  write_bytes(second, make_content(100'000, 5));
  const IoFileId f2 = io_->add_file(second);
  EXPECT_TRUE(io_->check_files().empty());
  // The kernel stamps mtime from a clock that ticks every few ms.
  std::this_thread::sleep_for(30ms);
  {
    const int fd = open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_EQ(pwrite(fd, "x", 1, 10), 1);
    close(fd);
  }
  ASSERT_EQ(unlink(second.c_str()), 0);
  const auto changes = io_->check_files();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].file, file_);
  EXPECT_NE(changes[0].what.find("modified in place"), std::string::npos) << changes[0].what;
  EXPECT_EQ(changes[1].file, f2);
  EXPECT_NE(changes[1].what.find("no longer opens"), std::string::npos) << changes[1].what;
  // The unlinked file's inode lives on while open: still readable.
  AlignedBuf buf(io_room(0, 100'000));
  ReadRequest r = req(f2, 0, 100'000, buf.data());
  ASSERT_TRUE(io_->read_batch({&r, 1})) << r.message;
  EXPECT_EQ(first_mismatch(r.data(), make_content(100'000, 5), 0, 100'000), -1);
}

TEST_P(FaultTest, DestroyingTheEngineWaitsForReadsInFlight) {
  io_->slow_reads(100ms);
  std::vector<ReadRequest> reqs;
  for (uint64_t off : {0ull, 1'000'000ull, 2'000'000ull}) {
    bufs_.emplace_back(io_room(off, 4096));
    reqs.push_back(req(file_, off, 4096, bufs_.back().data()));
  }
  const IoTicket t = io_->submit(reqs);
  io_.reset();  // must drain, not drop: the destinations are still written
  for (auto& r : reqs) expect_good(r);
}

INSTANTIATE_TEST_SUITE_P(Modes, FaultTest, ::testing::ValuesIn(all_modes()),
                         [](const auto& info) { return std::string(io_mode_name(info.param)); });

TEST(Fallback, DirectWithoutIoUringFallsBackToPreadAndSaysSo) {
  setenv("MOEFLUX_IO_NO_URING", "1", 1);
  std::vector<std::string> log;
  auto io = engine(IoMode::kDirect, 4, &log);
  unsetenv("MOEFLUX_IO_NO_URING");
  EXPECT_EQ(io->mode(), IoMode::kPread);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("falling back to pread"), std::string::npos) << log[0];
  EXPECT_NE(io->describe().find("io_uring unavailable"), std::string::npos) << io->describe();
  // And it reads, with O_DIRECT.
  ScratchDir dir;
  const std::string path = dir.file("f.bin");
  const auto content = make_content(300'000, 4);
  write_bytes(path, content);
  const IoFileId f = io->add_file(path);
  AlignedBuf buf(io_room(77, 200'000));
  ReadRequest r = req(f, 77, 200'000, buf.data());
  ASSERT_TRUE(io->read_batch({&r, 1})) << r.message;
  EXPECT_EQ(first_mismatch(r.data(), content, 77, 200'000), -1);
  EXPECT_TRUE(log.size() == 1) << "the file itself took O_DIRECT: " << log.back();
}

TEST(Fallback, WithoutFallbackTheEngineRefuses) {
  setenv("MOEFLUX_IO_NO_URING", "1", 1);
  IoOptions o;
  o.allow_fallback = false;
  EXPECT_THROW(make_io_engine(o), Error);
  unsetenv("MOEFLUX_IO_NO_URING");
}

TEST(Fallback, AFilesystemWithoutODirectIsReadThroughThePageCache) {
  // tmpfs before Linux 6.6 refuses O_DIRECT (EINVAL at open). Where no such
  // filesystem is at hand, MOEFLUX_IO_NO_ODIRECT makes the open refuse alike.
  ScratchDir dir;
  const std::string path = dir.file("no-direct.bin");
  const auto content = make_content(50'000, 6);
  write_bytes(path, content);
  setenv("MOEFLUX_IO_NO_ODIRECT", "1", 1);
  std::vector<std::string> log;
  auto io = engine(IoMode::kDirect, 4, &log);
  const IoFileId f = io->add_file(path);
  unsetenv("MOEFLUX_IO_NO_ODIRECT");
  AlignedBuf buf(io_room(3, 40'000));
  ReadRequest r = req(f, 3, 40'000, buf.data());
  EXPECT_TRUE(io->read_batch({&r, 1})) << r.message;
  EXPECT_EQ(first_mismatch(r.data(), content, 3, 40'000), -1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find(path), std::string::npos) << log[0];
  EXPECT_NE(log[0].find("page cache"), std::string::npos) << log[0];
}

}  // namespace
