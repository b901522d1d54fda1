// One read of an extent of a registered file into caller memory, and its
// result. The same request works in every I/O mode, so the expert store can
// switch modes without changing how it lays out its slots.
//
// Alignment contract (all modes):
//   - `dst` is aligned to kIoAlign (4096) and has io_room(offset, length)
//     bytes of room, at most length + 2 * kIoAlign - 1 (< length + 8 KiB).
//   - The data lands at dst + io_data_offset(offset) = dst + offset % 4096,
//     i.e. at req.data(), never at dst itself (unless the offset is aligned).
//   - The engine may write anything in [dst, dst + room): O_DIRECT reads the
//     covering 4096-aligned blocks straight into the slot, so the bytes
//     before and after the extent are file bytes of the neighbouring blocks.
//   - Why 4096 when the device asks for less (512 here): one constant that
//     satisfies every filesystem we meet (statx reports the real need and a
//     file whose need is larger is read buffered, with a log line), and
//     page-aligned slots are what cudaHostRegister wants anyway.
//
// Merging: requests of one submit() on the same file whose destinations
// mirror the file layout — the same `dst - align_down(offset, 4096)` — are
// parts of one buffer laid out like the file. The engine reads them with one
// read when their rooms overlap or touch (that read writes nothing outside
// their rooms). When they share a nonzero `group`, the caller also declares
// the memory between their rooms as its own, and the engine reads holes of
// up to IoOptions::merge_gap between them too. To get one read for an
// expert's gate, up and down, place them in the slot at their file distances
// (and give them a group if the file has padding between them).
// Without a group, separate buffers that happen to mirror (it happens: small
// slots sit at consecutive pages) are never read across a hole.
// Rooms of requests in flight must not overlap, except mirrored requests of
// one submit (the engine merges them: two reads must not write the same
// block at once).
// When a merged read fails, the engine reads its requests again in pieces
// (requests whose blocks overlap stay together), so an I/O error fails only
// the requests in the piece that covers the bad range.
#pragma once
#include <cstdint>
#include <string>

namespace moeflux {

using IoFileId = uint32_t;

inline constexpr uint64_t kIoAlign = 4096;

constexpr uint64_t io_align_down(uint64_t x) { return x & ~(kIoAlign - 1); }
constexpr uint64_t io_align_up(uint64_t x) { return (x + kIoAlign - 1) & ~(kIoAlign - 1); }
// Where in the destination the first byte of the extent lands.
constexpr uint64_t io_data_offset(uint64_t offset) { return offset % kIoAlign; }
// Bytes of room the destination must have for an extent.
constexpr uint64_t io_room(uint64_t offset, uint64_t length) {
  return io_align_up(io_data_offset(offset) + length);
}

enum class ReadStatus : uint8_t {
  kPending,  // submitted, not finished (or never submitted)
  kOk,       // all `length` bytes are at data()
  kError,    // see error / message; bytes_read of the extent are valid
};

// Error codes besides the kernel's errno values (EIO, ...):
//   ENODATA  the file ended before the extent did (truncated file)
//   EINVAL   the request breaks the contract (misaligned dst, unknown file)
struct ReadRequest {
  // In
  IoFileId file = 0;
  uint64_t offset = 0;  // absolute offset in the file
  uint64_t length = 0;
  void* dst = nullptr;  // kIoAlign-aligned, io_room(offset, length) bytes
  uint64_t tag = 0;     // the caller's; untouched
  uint32_t group = 0;   // nonzero: may be merged across holes with mirrored requests of the same group

  // Out (written by the engine; read them only after the ticket is done)
  ReadStatus status = ReadStatus::kPending;
  int error = 0;            // errno-style code when status == kError
  uint64_t bytes_read = 0;  // bytes of the extent that are valid at data()
  std::string message;      // on error: file path, offset, length and cause

  uint8_t* data() const { return static_cast<uint8_t*>(dst) + io_data_offset(offset); }
  bool ok() const { return status == ReadStatus::kOk; }
};

// A registered file whose path now names something else than what was
// opened (replaced by rename, truncated or rewritten in place, or removed).
// The engine keeps reading the inode it opened; see IoEngine::check_files.
struct FileChange {
  IoFileId file = 0;
  std::string path;
  std::string what;  // e.g. "replaced: inode 12 -> 34"
};

}  // namespace moeflux
