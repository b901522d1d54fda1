#include "experts/io/faulty_io.h"

#include "core/error.h"

namespace moeflux {

FaultyIo::FaultyIo(std::unique_ptr<IoEngine> inner) : inner_(std::move(inner)) {
  if (!inner_) fail("FaultyIo needs an engine");
  inner_->set_fault_hook(this);
}

FaultyIo::~FaultyIo() {
  inner_.reset();  // drains the reads in flight, which may still call before_read
}

void FaultyIo::set_fault_hook(IoFaultHook*) { fail("FaultyIo already is the fault hook of its engine"); }

void FaultyIo::fail_at(IoFileId file, uint64_t offset, int error) {
  std::lock_guard lock(mu_);
  bad_.push_back({file, offset, error});
}

void FaultyIo::fail_every(int n, int error) {
  if (n < 1) fail("fail_every needs n >= 1, got {}", n);
  std::lock_guard lock(mu_);
  every_n_ = n;
  every_error_ = error;
  every_count_ = 0;
}

void FaultyIo::short_reads(uint64_t max_bytes, int count) {
  if (max_bytes == 0) fail("a short read returns at least one byte (0 bytes is end of file: use truncate)");
  std::lock_guard lock(mu_);
  short_max_ = max_bytes;
  short_count_ = count;
}

void FaultyIo::slow_reads(std::chrono::milliseconds delay, int count) {
  std::lock_guard lock(mu_);
  delay_ = delay;
  delay_count_ = count;
}

void FaultyIo::truncate(IoFileId file, uint64_t size) {
  std::lock_guard lock(mu_);
  truncated_.emplace_back(file, size);
}

void FaultyIo::clear() {
  std::lock_guard lock(mu_);
  bad_.clear();
  truncated_.clear();
  every_n_ = 0;
  short_count_ = 0;
  delay_count_ = 0;
}

FaultyIo::Injected FaultyIo::injected() const {
  std::lock_guard lock(mu_);
  return injected_;
}

IoFault FaultyIo::before_read(IoFileId file, uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  IoFault f;
  ++injected_.calls;
  for (const BadRange& b : bad_)
    if (b.file == file && b.offset >= offset && b.offset - offset < length) f.error = b.error;
  if (every_n_ > 0 && ++every_count_ % uint64_t(every_n_) == 0) f.error = every_error_;
  if (f.error) {
    ++injected_.errors;
    return f;
  }
  for (const auto& [tf, size] : truncated_) {
    if (tf == file && offset + length > size) {
      f.max_bytes = std::min(f.max_bytes, offset >= size ? 0 : size - offset);
      ++injected_.truncations;
    }
  }
  if (short_count_ != 0 && length > short_max_) {
    f.max_bytes = std::min(f.max_bytes, short_max_);
    ++injected_.short_reads;
    if (short_count_ > 0) --short_count_;
  }
  if (delay_count_ != 0) {
    f.delay = delay_;
    ++injected_.delays;
    if (delay_count_ > 0) --delay_count_;
  }
  return f;
}

}  // namespace moeflux
