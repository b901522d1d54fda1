// Bounded reads of small text files (config.json, index files, chat
// templates). Only a regular file of at most max_bytes is read: a path to
// /dev/zero would otherwise be read forever, a FIFO would block forever, a
// directory would read as empty.
#pragma once
#include <cstdint>
#include <string>

namespace moeflux {

inline constexpr uint64_t kMaxTextFileBytes = uint64_t(64) << 20;  // far above any real config or template

// Reads `path` whole. `what` says what the file is for in messages (e.g.
// "config.json", "--chat-template"). Throws Error naming the path, what was
// expected and what was found.
std::string read_small_file(const std::string& path, const std::string& what,
                            uint64_t max_bytes = kMaxTextFileBytes);

}  // namespace moeflux
