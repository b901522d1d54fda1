// Tells the expert store, at the cost of one non-blocking read() instead of
// an fstat + stat per weights file, whether it is time to run the full file
// check (IoEngine::check_files). The store used to run that check on every
// acquire that missed: ~13 files x 2 syscalls per layer on the decode path.
//
// inotify watches every file (modified, attributes/mtime/link count changed,
// moved, deleted) and the directories holding them (a file created, moved or
// renamed over one of ours). fsnotify queues the event before the writing
// syscall returns, so a check after a rename() or write() that has returned
// always sees it: no window in which a replaced file is served from the old
// inode on a local filesystem. inotify does not see changes made by another
// machine on a network filesystem, so a full check also runs whenever
// `backstop` has passed since the last one; and where inotify cannot be set
// up (no watches left), every call says "check".
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace moeflux {

class FileWatch {
 public:
  explicit FileWatch(const std::vector<std::string>& paths,
                     std::chrono::milliseconds backstop = std::chrono::milliseconds(1000));
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  // True when a full check is due: an event arrived since the last true, the
  // backstop interval passed, or inotify is unavailable. Consumes the events.
  // Not thread-safe: the store calls it under its lock.
  bool check_due();
  // Whether inotify is in use (else every check_due() is true).
  bool watching() const { return fd_ >= 0; }
  const std::string& why_not() const { return why_not_; }

 private:
  int fd_ = -1;
  std::chrono::milliseconds backstop_;
  std::chrono::steady_clock::time_point last_check_;
  std::string why_not_;
};

}  // namespace moeflux
