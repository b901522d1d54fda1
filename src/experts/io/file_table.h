// The files an engine reads: opened once, with the identity they had when
// opened so that a replacement of the path can be detected later.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/mapping_guard.h"
#include "experts/io/read_request.h"

namespace moeflux::detail {

struct IoFile {
  IoFileId id = 0;
  std::string path;
  int fd_direct = -1;    // O_DIRECT; -1 when the mode or the filesystem says no
  int fd_buffered = -1;  // always open: unaligned continuations, size checks
  const uint8_t* map = nullptr;  // mmap mode only
  uint64_t map_size = 0;
  // mmap mode: a load past the end of a file that shrank reads zeros
  // instead of raising SIGBUS; a copy that overlaps the zeros is failed.
  MappingGuard map_guard;
  // Identity when opened.
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t size = 0;
  timespec mtime{};
};

class FileTable {
 public:
  using Log = std::function<void(const std::string&)>;
  FileTable(bool want_direct, bool want_map, Log log);
  ~FileTable();
  FileTable(const FileTable&) = delete;
  FileTable& operator=(const FileTable&) = delete;

  IoFileId add(const std::string& path);
  // nullptr for an unknown id. The pointer stays valid for the table's life.
  const IoFile* find(IoFileId id) const;
  std::vector<FileChange> check() const;

 private:
  bool want_direct_, want_map_;
  Log log_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<IoFile>> files_;
};

}  // namespace moeflux::detail
