#include "experts/file_watch.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.h"

namespace moeflux {

FileWatch::FileWatch(const std::vector<std::string>& paths, std::chrono::milliseconds backstop)
    : backstop_(backstop), last_check_(std::chrono::steady_clock::now()) {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    why_not_ = fmt::format("inotify_init1: {}", strerror(errno));
    return;
  }
  // On the file: anything that changes its bytes or its identity. IN_ATTRIB
  // covers mtime (touch), truncate's metadata and the link count dropping
  // when another file is renamed over it.
  constexpr uint32_t kFile = IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF;
  // On its directory: a file appearing under one of our names (rename over
  // it, or delete + create). Events for unrelated names only cost one full
  // check each.
  constexpr uint32_t kDir = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR;
  std::set<std::string> dirs;
  for (const std::string& p : paths) {
    std::string dir = std::filesystem::path(p).parent_path().string();
    if (dir.empty()) dir = ".";
    if (inotify_add_watch(fd_, p.c_str(), kFile) < 0 ||
        (dirs.insert(dir).second && inotify_add_watch(fd_, dir.c_str(), kDir) < 0)) {
      why_not_ = fmt::format("inotify_add_watch({}): {}", p, strerror(errno));
      close(fd_);
      fd_ = -1;
      return;
    }
  }
}

FileWatch::~FileWatch() {
  if (fd_ >= 0) close(fd_);
}

bool FileWatch::check_due() {
  const auto now = std::chrono::steady_clock::now();
  bool due = fd_ < 0 || now - last_check_ >= backstop_;
  if (fd_ >= 0) {
    // Drain every queued event: one call usually, returning EAGAIN when
    // nothing happened. Overflow (IN_Q_OVERFLOW) is an event too.
    alignas(inotify_event) char buf[4096];
    for (;;) {
      const ssize_t n = read(fd_, buf, sizeof buf);
      if (n > 0) {
        due = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN) due = true;  // cannot tell: check
      break;  // EAGAIN: drained
    }
  }
  if (due) last_check_ = now;
  return due;
}

}  // namespace moeflux
