// A fault-injecting decorator over any IoEngine, for tests. It installs
// itself as the inner engine's fault hook, so the faults happen at the level
// of single read calls, below the engine's own retry and merge logic: an
// injected short read is continued by the real engine code, an injected EIO
// on a merged read exercises the real split-and-retry path.
#pragma once
#include <cerrno>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "experts/io/io_engine.h"

namespace moeflux {

class FaultyIo final : public IoEngine, private IoFaultHook {
 public:
  explicit FaultyIo(std::unique_ptr<IoEngine> inner);
  ~FaultyIo() override;

  // Every read call whose range covers byte `offset` of `file` fails with
  // `error`, like a bad sector, until clear().
  void fail_at(IoFileId file, uint64_t offset, int error = EIO);
  // Every nth read call from now on fails with `error` (n >= 1).
  void fail_every(int n, int error = EIO);
  // The next `count` read calls (count < 0: all) return at most max_bytes.
  void short_reads(uint64_t max_bytes, int count = -1);
  // The next `count` read calls (count < 0: all) start `delay` later.
  void slow_reads(std::chrono::milliseconds delay, int count = -1);
  // Reads of `file` stop at byte `size`, as if the file had been truncated.
  void truncate(IoFileId file, uint64_t size);
  // Removes every rule; the engine is then as good as new.
  void clear();

  struct Injected {
    uint64_t calls = 0, errors = 0, short_reads = 0, delays = 0, truncations = 0;
  };
  Injected injected() const;

  IoFileId add_file(const std::string& path) override { return inner_->add_file(path); }
  std::string file_path(IoFileId f) const override { return inner_->file_path(f); }
  uint64_t file_size(IoFileId f) const override { return inner_->file_size(f); }
  std::vector<FileChange> check_files() const override { return inner_->check_files(); }
  IoTicket submit(std::span<ReadRequest> r) override { return inner_->submit(r); }
  bool poll(const IoTicket& t) const override { return inner_->poll(t); }
  void wait(const IoTicket& t) const override { inner_->wait(t); }
  bool wait_for(const IoTicket& t, std::chrono::milliseconds ms) const override { return inner_->wait_for(t, ms); }
  IoMode mode() const override { return inner_->mode(); }
  std::string describe() const override { return "faulty " + inner_->describe(); }
  IoStats stats() const override { return inner_->stats(); }
  // The inner engine's hook slot is taken by this decorator.
  void set_fault_hook(IoFaultHook* hook) override;

 private:
  IoFault before_read(IoFileId file, uint64_t offset, uint64_t length) override;

  struct BadRange {
    IoFileId file;
    uint64_t offset;
    int error;
  };
  mutable std::mutex mu_;
  std::vector<BadRange> bad_;
  std::vector<std::pair<IoFileId, uint64_t>> truncated_;
  int every_n_ = 0, every_error_ = EIO;
  uint64_t every_count_ = 0;
  uint64_t short_max_ = 0;
  int short_count_ = 0;
  std::chrono::milliseconds delay_{0};
  int delay_count_ = 0;
  Injected injected_;
  // Last: destroyed first, so that reads still in flight while the inner
  // engine drains can still call before_read on live members.
  std::unique_ptr<IoEngine> inner_;
};

}  // namespace moeflux
