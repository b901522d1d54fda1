// Correctness of every I/O mode: random extents against the file content,
// the alignment contract (data at dst + offset % 4096, nothing written
// outside the room), merging, async tickets, and bad requests.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "experts/io/io_engine.h"
#include "io_test_util.h"

using namespace moeflux;
using namespace moeflux::iotest;

namespace {

class ReadTest : public ::testing::TestWithParam<IoMode> {
 protected:
  void SetUp() override {
    path_ = dir_.file("data.bin");
    // Not a multiple of 4096: the last block is partial, which O_DIRECT
    // reads short.
    content_ = make_content(kSize, 1);
    write_bytes(path_, content_);
    io_ = engine(GetParam(), 16, &log_);
    file_ = io_->add_file(path_);
  }

  // Checks one finished request: status, data, and the guard bytes beyond
  // its room (the room itself may hold anything).
  void expect_read(const ReadRequest& r, const AlignedBuf& buf, uint64_t room_at = 0) {
    ASSERT_TRUE(r.ok()) << r.message;
    ASSERT_EQ(r.bytes_read, r.length);
    ASSERT_EQ(r.data(), static_cast<uint8_t*>(r.dst) + r.offset % kIoAlign);
    ASSERT_EQ(first_mismatch(r.data(), content_, r.offset, r.length), -1)
        << "offset " << r.offset << " length " << r.length;
    const uint64_t end = room_at + io_room(r.offset, r.length);
    for (uint64_t i = end; i < buf.size(); ++i) ASSERT_EQ(buf.data()[i], kGuard) << "written past the room at +" << i;
  }

  static constexpr uint64_t kSize = (24 << 20) + 1234;
  ScratchDir dir_;
  std::string path_;
  std::vector<uint8_t> content_;
  std::vector<std::string> log_;
  std::unique_ptr<IoEngine> io_;
  IoFileId file_ = 0;
};

TEST_P(ReadTest, RandomExtentsMatchTheFile) {
  std::mt19937_64 rng(42);
  // Lengths from 1 byte to 4 MiB, log-uniform, at any offset.
  auto random_length = [&] {
    const int bits = int(rng() % 23);
    return std::max<uint64_t>(1, rng() % ((2ull << bits)));
  };
  for (int round = 0; round < 8; ++round) {
    const int n = 24;
    std::vector<ReadRequest> reqs(n);
    std::vector<AlignedBuf> bufs;
    for (int i = 0; i < n; ++i) {
      ReadRequest& r = reqs[size_t(i)];
      r.length = std::min<uint64_t>(random_length(), kSize);
      r.offset = rng() % (kSize - r.length + 1);
      r.file = file_;
      r.tag = uint64_t(i);
      bufs.emplace_back(io_room(r.offset, r.length) + kIoAlign);  // + guard
      r.dst = bufs.back().data();
    }
    ASSERT_TRUE(io_->read_batch(reqs));
    for (int i = 0; i < n; ++i) {
      expect_read(reqs[size_t(i)], bufs[size_t(i)]);
      ASSERT_EQ(reqs[size_t(i)].tag, uint64_t(i));
    }
  }
}

TEST_P(ReadTest, EdgesOfTheFile) {
  const std::pair<uint64_t, uint64_t> cases[] = {
      {0, 1}, {0, kSize}, {kSize - 1, 1}, {kSize - 5000, 5000}, {4095, 2}, {4096, 4096}, {8191, 4097}};
  for (auto [off, len] : cases) {
    AlignedBuf buf(io_room(off, len) + kIoAlign);
    ReadRequest r = req(file_, off, len, buf.data());
    ASSERT_TRUE(io_->read_batch({&r, 1})) << r.message;
    expect_read(r, buf);
  }
}

TEST_P(ReadTest, ManyBatchesInFlight) {
  std::mt19937_64 rng(7);
  constexpr int kBatches = 12, kPer = 10;
  std::vector<std::vector<ReadRequest>> reqs(kBatches, std::vector<ReadRequest>(kPer));
  std::vector<std::vector<AlignedBuf>> bufs(kBatches);
  std::vector<IoTicket> tickets;
  for (int b = 0; b < kBatches; ++b) {
    for (auto& r : reqs[size_t(b)]) {
      r.length = 1 + rng() % (300 << 10);
      r.offset = rng() % (kSize - r.length);
      r.file = file_;
      bufs[size_t(b)].emplace_back(io_room(r.offset, r.length) + kIoAlign);
      r.dst = bufs[size_t(b)].back().data();
    }
    tickets.push_back(io_->submit(reqs[size_t(b)]));
  }
  // Wait in reverse order, polling some first: completion order is free.
  for (int b = kBatches - 1; b >= 0; --b) {
    if (b % 2) {
      while (!io_->poll(tickets[size_t(b)])) std::this_thread::yield();
    } else {
      io_->wait(tickets[size_t(b)]);
    }
    ASSERT_TRUE(io_->poll(tickets[size_t(b)]));
    for (int i = 0; i < kPer; ++i) expect_read(reqs[size_t(b)][size_t(i)], bufs[size_t(b)][size_t(i)]);
  }
}

TEST_P(ReadTest, MirroredExtentsAreMergedIntoOneRead) {
  // An expert's gate, up and down at their file distances in one slot: one
  // read covers all three (and the holes between them).
  const uint64_t base = 3 * 4096 + 100;
  const uint64_t offs[] = {base, base + 70000, base + 70000 + 65000 + 17};
  const uint64_t lens[] = {70000, 65000, 90001};
  const uint64_t span = offs[2] + lens[2] - base;
  AlignedBuf slot(io_room(base, span) + kIoAlign);
  std::vector<ReadRequest> reqs(3);
  for (int i = 0; i < 3; ++i) {
    reqs[size_t(i)] = req(file_, offs[i], lens[i], nullptr);
    reqs[size_t(i)].dst = slot.data() + io_align_down(offs[i] - io_align_down(base));
    reqs[size_t(i)].group = 7;  // the 17-byte hole between up and down is ours
  }
  std::swap(reqs[0], reqs[2]);  // submission order does not matter
  const IoStats before = io_->stats();
  ASSERT_TRUE(io_->read_batch(reqs));
  const IoStats after = io_->stats();
  for (auto& r : reqs) {
    ASSERT_TRUE(r.ok()) << r.message;
    ASSERT_EQ(first_mismatch(r.data(), content_, r.offset, r.length), -1);
  }
  EXPECT_EQ(after.merged - before.merged, 3u);
  EXPECT_EQ(after.reads - before.reads, 1u);
  // The whole span landed like the file.
  EXPECT_EQ(first_mismatch(slot.data() + base % kIoAlign, content_, base, span), -1);
}

TEST_P(ReadTest, MirroredExtentsWithAHoleNeedAGroup) {
  // Two 10000-byte extents 60000 bytes apart, at mirrored places of one
  // buffer. Without a group the memory between the rooms is not the
  // engine's (separate small slots at consecutive pages mirror by chance):
  // two reads, and the guard bytes between the rooms stay. With a group,
  // one read.
  const uint64_t a = 8192 * 3, b = a + 70000;
  for (uint32_t group : {0u, 5u}) {
    AlignedBuf slot(io_room(a, b + 10000 - a) + kIoAlign);
    std::vector<ReadRequest> reqs = {req(file_, a, 10000, slot.data()),
                                     req(file_, b, 10000, slot.data() + io_align_down(b) - io_align_down(a))};
    for (auto& r : reqs) r.group = group;
    const IoStats before = io_->stats();
    ASSERT_TRUE(io_->read_batch(reqs));
    EXPECT_EQ(io_->stats().reads - before.reads, group ? 1u : 2u) << "group " << group;
    for (auto& r : reqs) EXPECT_EQ(first_mismatch(r.data(), content_, r.offset, r.length), -1);
    if (group == 0) {
      for (uint64_t i = io_room(a, 10000); i < io_align_down(b) - io_align_down(a); ++i)
        ASSERT_EQ(slot.data()[i], kGuard) << "the hole was written at +" << i;
    }
  }
}

TEST_P(ReadTest, SeparateSlotsAreNotMerged) {
  AlignedBuf a(io_room(100, 5000)), b(io_room(5100, 5000));
  std::vector<ReadRequest> reqs = {req(file_, 100, 5000, a.data()),
                                   req(file_, 5100, 5000, b.data())};
  const IoStats before = io_->stats();
  ASSERT_TRUE(io_->read_batch(reqs));
  EXPECT_EQ(io_->stats().merged - before.merged, 0u);
  EXPECT_EQ(io_->stats().reads - before.reads, 2u);
  EXPECT_EQ(first_mismatch(reqs[0].data(), content_, 100, 5000), -1);
  EXPECT_EQ(first_mismatch(reqs[1].data(), content_, 5100, 5000), -1);
}

TEST_P(ReadTest, FarApartMirroredExtentsAreNotMerged) {
  // Mirrored but 1 MiB apart, beyond the merge gap: two reads, and the
  // memory between them is not touched.
  const uint64_t gap = 1 << 20;
  AlignedBuf slot(io_room(0, 2 * gap));
  std::vector<ReadRequest> reqs = {req(file_, 10, 4000, slot.data()),
                                   req(file_, gap + 10, 4000, slot.data() + gap)};
  const IoStats before = io_->stats();
  ASSERT_TRUE(io_->read_batch(reqs));
  EXPECT_EQ(io_->stats().reads - before.reads, 2u);
  for (uint64_t i = kIoAlign; i < gap; ++i) ASSERT_EQ(slot.data()[i], kGuard) << i;
}

TEST_P(ReadTest, OverlappingMirroredExtentsShareOneRead) {
  // Requests in the same 4 KiB block of one slot: O_DIRECT reading them
  // apart would write that block twice at once. The exact-range modes read
  // the overlapping pair once and the first one (20 bytes, 970 bytes
  // before the next) alone.
  AlignedBuf slot(io_room(0, 3 * kIoAlign));
  std::vector<ReadRequest> reqs = {req(file_, 8192 + 10, 20, slot.data()),
                                   req(file_, 8192 + 1000, 5000, slot.data()),
                                   req(file_, 8192 + 1005, 5, slot.data())};
  const IoStats before = io_->stats();
  ASSERT_TRUE(io_->read_batch(reqs));
  const bool direct = GetParam() == IoMode::kDirect || GetParam() == IoMode::kPread;
  EXPECT_EQ(io_->stats().reads - before.reads, direct ? 1u : 2u);
  for (auto& r : reqs) EXPECT_EQ(first_mismatch(r.data(), content_, r.offset, r.length), -1);
}

TEST_P(ReadTest, BadRequestsFailAloneAndTheEngineGoesOn) {
  AlignedBuf good(io_room(5, 100)), odd(io_room(5, 100) + 64);
  std::vector<ReadRequest> reqs = {
      req(file_, 5, 100, odd.data() + 64),  // misaligned dst
      req(99, 5, 100, good.data()),         // unknown file
      req(file_, kSize - 10, 100, good.data()),  // beyond the end
      req(file_, 5, 0, nullptr),            // empty: ok
  };
  EXPECT_FALSE(io_->read_batch(reqs));
  EXPECT_EQ(reqs[0].error, EINVAL);
  EXPECT_NE(reqs[0].message.find("aligned"), std::string::npos) << reqs[0].message;
  EXPECT_EQ(reqs[1].error, EINVAL);
  EXPECT_NE(reqs[1].message.find("unknown file"), std::string::npos) << reqs[1].message;
  EXPECT_EQ(reqs[2].error, ENODATA);
  EXPECT_EQ(reqs[2].bytes_read, 10u);
  EXPECT_NE(reqs[2].message.find(path_), std::string::npos) << reqs[2].message;
  EXPECT_NE(reqs[2].message.find(std::to_string(kSize - 10)), std::string::npos) << reqs[2].message;
  EXPECT_TRUE(reqs[3].ok());
  ReadRequest r = req(file_, 5, 100, good.data());
  ASSERT_TRUE(io_->read_batch({&r, 1})) << r.message;
  EXPECT_EQ(first_mismatch(r.data(), content_, 5, 100), -1);
}

TEST_P(ReadTest, EmptyBatchIsDoneAtOnce) {
  const IoTicket t = io_->submit({});
  EXPECT_TRUE(io_->poll(t));
  EXPECT_TRUE(io_->wait_for(t, std::chrono::milliseconds(0)));
}

TEST_P(ReadTest, DescribesItsMode) {
  EXPECT_EQ(io_->mode(), GetParam());
  EXPECT_NE(io_->describe().find(io_mode_name(GetParam())), std::string::npos) << io_->describe();
  EXPECT_EQ(io_->file_path(file_), path_);
  EXPECT_EQ(io_->file_size(file_), kSize);
  EXPECT_TRUE(io_->check_files().empty());
  EXPECT_TRUE(log_.empty()) << log_.front();  // no fallback on this filesystem
}

// Pages of `path` resident in the page cache.
size_t resident_pages(const std::string& path, uint64_t size) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  std::vector<unsigned char> vec((size + 4095) / 4096);
  mincore(p, size, vec.data());
  munmap(p, size);
  close(fd);
  size_t n = 0;
  for (unsigned char c : vec) n += c & 1;
  return n;
}

TEST_P(ReadTest, OnlyTheCachedModesFillThePageCache) {
  // Written pages are dirty and cannot be dropped until written back.
  const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
  const size_t before = resident_pages(path_, kSize);
  AlignedBuf buf(io_room(0, 8 << 20));
  ReadRequest r = req(file_, 0, 8 << 20, buf.data());
  ASSERT_TRUE(io_->read_batch({&r, 1})) << r.message;
  const size_t after = resident_pages(path_, kSize);
  if (GetParam() == IoMode::kDirect || GetParam() == IoMode::kPread) {
    EXPECT_LE(after, before + 2) << "O_DIRECT read went through the page cache";
  } else {
    EXPECT_GE(after, before + 1024) << "a buffered read of 2048 pages cached almost none";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ReadTest, ::testing::ValuesIn(all_modes()),
                         [](const auto& info) { return std::string(io_mode_name(info.param)); });

TEST(ReadModes, EveryModeGivesTheSameBytes) {
  ScratchDir dir;
  const std::string path = dir.file("same.bin");
  const uint64_t size = (5 << 20) + 77;
  const auto content = make_content(size, 9);
  write_bytes(path, content);
  std::mt19937_64 rng(3);
  std::vector<std::pair<uint64_t, uint64_t>> extents;
  for (int i = 0; i < 40; ++i) {
    const uint64_t len = 1 + rng() % (1 << (rng() % 21));
    extents.emplace_back(rng() % (size - len), len);
  }
  std::vector<std::vector<uint8_t>> first;
  for (IoMode m : all_modes()) {
    auto io = engine(m);
    const IoFileId f = io->add_file(path);
    std::vector<ReadRequest> reqs;
    std::vector<AlignedBuf> bufs;
    for (auto [off, len] : extents) {
      bufs.emplace_back(io_room(off, len));
      reqs.push_back(req(f, off, len, bufs.back().data()));
    }
    ASSERT_TRUE(io->read_batch(reqs)) << io_mode_name(m);
    for (size_t i = 0; i < reqs.size(); ++i) {
      ASSERT_EQ(first_mismatch(reqs[i].data(), content, reqs[i].offset, reqs[i].length), -1)
          << io_mode_name(m) << " extent " << i << " offset " << reqs[i].offset << " length " << reqs[i].length;
      std::vector<uint8_t> got(reqs[i].data(), reqs[i].data() + reqs[i].length);
      if (m == all_modes().front())
        first.push_back(std::move(got));
      else
        ASSERT_EQ(got, first[i]) << io_mode_name(m) << " extent " << i;
    }
  }
}

TEST(ReadModes, ParsesModeNames) {
  for (IoMode m : all_modes()) EXPECT_EQ(parse_io_mode(io_mode_name(m)), m);
  EXPECT_THROW(parse_io_mode("uring"), Error);
}

TEST(ReadModes, MissingFileIsAClearError) {
  auto io = engine(IoMode::kDirect);
  try {
    io->add_file("/nonexistent/moeflux/x.bin");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/moeflux/x.bin"), std::string::npos) << e.what();
  }
}

}  // namespace
