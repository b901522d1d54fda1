#include "experts/io/engine_base.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace moeflux::detail {

namespace {

// io_uring takes a 32-bit length and Linux reads at most 2 GiB - 4 KiB per
// call; longer ranges continue like a short read.
constexpr uint64_t kMaxCall = 1ull << 30;
// EINTR/EAGAIN in a row on one op before it is treated as an error; the
// kernel only returns them transiently for regular files.
constexpr int kMaxSoftRetries = 1000;

}  // namespace

ReadCall ReadOp::next_call() const {
  ReadCall c;
  c.offset = pos;
  c.addr = reinterpret_cast<uint8_t*>(key + pos);
  if (direct && pos % kIoAlign == 0) {
    c.fd = file->fd_direct;
    c.len = std::min(read_end - pos, kMaxCall);
  } else {
    // An unaligned continuation (a short read that stopped mid-block) cannot
    // go through O_DIRECT; the buffered fd reads the same inode.
    c.fd = file->fd_buffered;
    c.len = std::min(need_end - pos, kMaxCall);
  }
  return c;
}

void ReadOp::apply(int64_t res, uint64_t asked, IoCounters& c) {
  if (res > 0 && uint64_t(res) > fault.max_bytes) res = int64_t(fault.max_bytes);
  if (res == -EINTR || res == -EAGAIN) {
    c.retries.fetch_add(1, std::memory_order_relaxed);
    if (++soft_retries > kMaxSoftRetries) error = int(-res);
    return;
  }
  soft_retries = 0;
  if (res < 0) {
    error = int(-res);
    return;
  }
  if (res == 0) {
    eof = true;
    return;
  }
  c.bytes_read.fetch_add(uint64_t(res), std::memory_order_relaxed);
  pos += uint64_t(res);
  if (uint64_t(res) < asked && pos < need_end) c.short_reads.fetch_add(1, std::memory_order_relaxed);
}

EngineBase::EngineBase(const IoOptions& o, bool direct_files, bool map_files)
    : opt_(o), files_(direct_files, map_files, o.log) {}

std::string EngineBase::file_path(IoFileId file) const {
  const IoFile* f = files_.find(file);
  if (!f) fail("unknown file id {}", file);
  return f->path;
}

uint64_t EngineBase::file_size(IoFileId file) const {
  const IoFile* f = files_.find(file);
  if (!f) fail("unknown file id {}", file);
  return f->size;
}

void EngineBase::fail_request(ReadRequest& r, const IoFile* f, int error, std::string cause) {
  r.status = ReadStatus::kError;
  r.error = error;
  r.message = fmt::format("read of {} at offset {} length {} failed: {}", f ? f->path : fmt::format("file #{}", r.file),
                          r.offset, r.length, cause);
  counters_.errors.fetch_add(1, std::memory_order_relaxed);
}

IoTicket EngineBase::submit(std::span<ReadRequest> reqs) {
  auto batch = std::make_shared<Batch>();
  batch->reqs = reqs;
  counters_.requests.fetch_add(reqs.size(), std::memory_order_relaxed);

  struct Entry {
    const IoFile* file;
    uint64_t key, begin, end;  // the file range this request needs read
    uint32_t group, index;
  };
  std::vector<Entry> entries;
  entries.reserve(reqs.size());
  for (uint32_t i = 0; i < reqs.size(); ++i) {
    ReadRequest& r = reqs[i];
    r.status = ReadStatus::kPending;
    r.error = 0;
    r.bytes_read = 0;
    r.message.clear();
    const IoFile* f = files_.find(r.file);
    const uintptr_t dst = reinterpret_cast<uintptr_t>(r.dst);
    if (!f) {
      fail_request(r, f, EINVAL, "unknown file id");
    } else if (r.offset + r.length < r.offset) {
      fail_request(r, f, EINVAL, "offset + length overflows");
    } else if (r.length == 0) {
      r.status = ReadStatus::kOk;
    } else if (dst == 0 || dst % kIoAlign != 0) {
      // Checked in every mode so that a store tested in buffered mode does
      // not break the day it runs with O_DIRECT.
      fail_request(r, f, EINVAL, fmt::format("destination {} is not {}-byte aligned", r.dst, kIoAlign));
    } else {
      counters_.bytes_requested.fetch_add(r.length, std::memory_order_relaxed);
      const bool direct = f->fd_direct >= 0;
      const uint64_t end = r.offset + r.length;
      entries.push_back({f, uint64_t(dst) - io_align_down(r.offset), direct ? io_align_down(r.offset) : r.offset,
                         direct ? io_align_up(end) : end, r.group, i});
    }
  }

  // Requests of one file with mirrored destinations (same key), by offset;
  // consecutive ones close enough become one op.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.file->id != b.file->id) return a.file->id < b.file->id;
    if (a.key != b.key) return a.key < b.key;
    return a.begin < b.begin;
  });
  std::vector<std::unique_ptr<ReadOp>> ops;
  uint64_t op_end = 0;       // range end of the op being built
  uint32_t op_group = 0;     // its group while all its requests share one, else 0
  for (const Entry& e : entries) {
    ReadOp* cur = ops.empty() ? nullptr : ops.back().get();
    const ReadRequest& r = reqs[e.index];
    bool mergeable = false;
    if (cur && cur->file == e.file && cur->key == e.key) {
      if (e.begin < op_end)  // overlapping blocks: must share one read
        mergeable = true;
      else if (std::max(op_end, e.end) - cur->pos <= opt_.max_merge)
        // Touching rooms: the read writes exactly the two rooms. A hole:
        // only where the group says the memory between is the caller's.
        mergeable = e.begin == op_end || (e.group != 0 && e.group == op_group && e.begin - op_end <= opt_.merge_gap);
    }
    if (mergeable) {
      if (cur->reqs.size() == 1) counters_.merged.fetch_add(1, std::memory_order_relaxed);
      counters_.merged.fetch_add(1, std::memory_order_relaxed);
      cur->reqs.push_back(e.index);
      op_end = std::max(op_end, e.end);
      cur->read_end = op_end;
      cur->need_end = std::max(cur->need_end, r.offset + r.length);
      if (e.group != op_group) op_group = 0;
      continue;
    }
    auto op = std::make_unique<ReadOp>();
    op->batch = batch;
    op->file = e.file;
    op->reqs.push_back(e.index);
    op->key = e.key;
    op->direct = e.file->fd_direct >= 0;
    op->pos = e.begin;
    op->need_end = r.offset + r.length;
    op->read_end = e.end;
    op_end = e.end;
    op_group = e.group;
    ops.push_back(std::move(op));
  }

  batch->pending.store(ops.size() + 1, std::memory_order_relaxed);  // +1: this submit's own hold
  if (!ops.empty()) dispatch(std::move(ops));
  // Dropping the hold last means a batch cannot complete before all of its
  // ops were handed over, and an empty batch completes here.
  if (batch->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    std::lock_guard lock(batch->mu);
    batch->done = true;
    batch->cv.notify_all();
  }
  return IoTicket(std::move(batch));
}

void EngineBase::consult_hook(ReadOp& op, const ReadCall& call) {
  counters_.reads.fetch_add(1, std::memory_order_relaxed);
  IoFaultHook* h = hook_.load(std::memory_order_acquire);
  op.fault = h ? h->before_read(op.file->id, call.offset, call.len) : IoFault{};
}

std::vector<std::unique_ptr<ReadOp>> EngineBase::finish(std::unique_ptr<ReadOp> op) {
  std::vector<std::unique_ptr<ReadOp>> retry;
  Batch& b = *op->batch;
  // A merged read that failed is read again in pieces, so that only the
  // requests near the bad range fail. A piece is a run of requests whose
  // ranges overlap (blocks, in direct mode): two reads must not write one
  // block at once. Pieces are not split again.
  const bool split = op->error && !op->split && op->reqs.size() > 1;
  uint64_t piece_end = 0;
  for (uint32_t i : op->reqs) {
    ReadRequest& r = b.reqs[i];
    const uint64_t end = r.offset + r.length;
    if (end <= op->pos) {
      r.status = ReadStatus::kOk;
      r.bytes_read = r.length;
      continue;
    }
    r.bytes_read = op->pos > r.offset ? op->pos - r.offset : 0;
    if (split) {
      const uint64_t begin = op->direct ? io_align_down(r.offset) : r.offset;
      const uint64_t range_end = op->direct ? io_align_up(end) : end;
      if (retry.empty() || begin >= piece_end) {  // op->reqs is by offset
        auto piece = std::make_unique<ReadOp>();
        piece->batch = op->batch;
        piece->file = op->file;
        piece->key = op->key;
        piece->direct = op->direct;
        piece->split = true;
        piece->pos = begin;
        retry.push_back(std::move(piece));
      }
      ReadOp& piece = *retry.back();
      piece.reqs.push_back(i);
      piece.need_end = std::max(piece.need_end, end);
      piece.read_end = std::max(piece.read_end, range_end);
      piece_end = std::max(piece_end, range_end);
    } else if (op->error) {
      fail_request(r, op->file, op->error, fmt::format("{} (errno {})", strerror(op->error), op->error));
    } else {
      fail_request(r, op->file, ENODATA,
                   fmt::format("the file ends at byte {} (truncated? it had {} bytes when opened)", op->pos,
                               op->file->size));
    }
  }
  const size_t n = retry.size();
  if (n) b.pending.fetch_add(n, std::memory_order_relaxed);
  if (b.pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    std::lock_guard lock(b.mu);
    b.done = true;
    b.cv.notify_all();
  }
  return retry;
}

bool EngineBase::poll(const IoTicket& t) const {
  if (!t.valid()) return true;
  std::lock_guard lock(t.batch()->mu);
  return t.batch()->done;
}

void EngineBase::wait(const IoTicket& t) const {
  if (!t.valid()) return;
  std::unique_lock lock(t.batch()->mu);
  t.batch()->cv.wait(lock, [&] { return t.batch()->done; });
}

bool EngineBase::wait_for(const IoTicket& t, std::chrono::milliseconds timeout) const {
  if (!t.valid()) return true;
  std::unique_lock lock(t.batch()->mu);
  return t.batch()->cv.wait_for(lock, timeout, [&] { return t.batch()->done; });
}

IoStats EngineBase::stats() const {
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  const IoCounters& c = counters_;
  return {ld(c.requests), ld(c.reads),       ld(c.merged),      ld(c.bytes_requested),
          ld(c.bytes_read), ld(c.short_reads), ld(c.retries), ld(c.errors)};
}

}  // namespace moeflux::detail
