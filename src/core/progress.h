// A progress bar for long work on stderr: redrawn in place on a terminal,
// a line per 10% otherwise (logs, CI).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace moeflux {

class Progress {
 public:
  Progress(std::string label, uint64_t total_bytes, bool enabled = true);
  ~Progress();
  void advance(uint64_t bytes);
  void done();

 private:
  void draw(bool final);
  std::string label_;
  uint64_t total_, done_ = 0;
  int last_decile_ = -1;
  bool tty_, enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string human_bytes(uint64_t bytes);

}  // namespace moeflux
