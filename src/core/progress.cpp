#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace moeflux {

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}

Progress::Progress(std::string label, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_(total_bytes), tty_(isatty(STDERR_FILENO)), enabled_(enabled),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_ && enabled_ && tty_) std::fputc('\n', stderr);
}

void Progress::advance(uint64_t bytes) {
  done_ += bytes;
  draw(false);
}

void Progress::done() {
  done_ = total_;
  draw(true);
  finished_ = true;
}

void Progress::draw(bool final) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double frac = total_ ? double(done_) / double(total_) : 1.0;
  const double rate = secs > 0 ? double(done_) / secs : 0;
  if (tty_) {
    if (!final && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int width = 30, filled = int(frac * width);
    std::fprintf(stderr, "\r%s [%s%s] %3d%% %s / %s  %s/s   ", label_.c_str(), std::string(size_t(filled), '#').c_str(),
                 std::string(size_t(width - filled), '.').c_str(), int(frac * 100), human_bytes(done_).c_str(),
                 human_bytes(total_).c_str(), human_bytes(uint64_t(rate)).c_str());
    if (final) std::fputc('\n', stderr);
  } else {
    const int decile = int(frac * 10);
    if (decile == last_decile_ && !final) return;
    if (final && last_decile_ == 10) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s: %d%% (%s of %s, %s/s)\n", label_.c_str(), decile * 10, human_bytes(done_).c_str(),
                 human_bytes(total_).c_str(), human_bytes(uint64_t(rate)).c_str());
  }
  std::fflush(stderr);
}

}  // namespace moeflux
