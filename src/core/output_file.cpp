#include "core/output_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace moeflux {

namespace fs = std::filesystem;

namespace {

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

mode_t current_umask() {
  // umask can only be read by setting it; moeflux sets it back at once and
  // nothing else in the process changes it.
  const mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the rename itself succeeded; durability of the name is best effort here
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void check_output_path(const std::string& path, Replace replace) {
  if (path.empty()) fail("no output file given");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) fail("cannot write {}: {}", path, std::strerror(errno));
    const std::string dir = parent_of(path);
    struct stat ds {};
    if (::stat(dir.c_str(), &ds) != 0 || !S_ISDIR(ds.st_mode))
      fail("cannot write {}: directory {} does not exist", path, dir);
    return;
  }
  if (S_ISLNK(st.st_mode))
    fail("{} is a symbolic link; moeflux does not replace links (give the path of the file itself)", path);
  if (S_ISDIR(st.st_mode)) fail("{} is a directory; give a file name", path);
  if (!S_ISREG(st.st_mode))
    fail("{} is not a regular file (a device, FIFO or socket); moeflux writes only regular files", path);
  if (replace == Replace::No) fail("{} already exists (pass --force to replace it)", path);
}

OutputFile::OutputFile(std::string path, Replace replace) : path_(std::move(path)), replace_(replace) {
  check_output_path(path_, replace_);
  const fs::path p(path_);
  // Hidden, unique and recognisable: `.NAME.XXXXXX.moeflux-tmp` beside the target, so
  // the rename stays on one filesystem and never collides with a user's file.
  static constexpr std::string_view kSuffix = ".moeflux-tmp";
  std::string templ = (p.parent_path() / ("." + p.filename().string() + ".XXXXXX")).string();
  templ += kSuffix;
  const int fd = ::mkstemps(templ.data(), int(kSuffix.size()));
  if (fd < 0) fail_as(ErrorKind::Io, "cannot create a temporary file beside {}: {}", path_, std::strerror(errno));
  tmp_ = templ;
  f_ = ::fdopen(fd, "wb");
  if (!f_) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp_.c_str());
    fail_as(ErrorKind::Io, "cannot write {}: {}", tmp_, std::strerror(e));
  }
}

OutputFile::~OutputFile() {
  if (f_) std::fclose(f_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void OutputFile::write(const void* data, size_t n) {
  if (!f_) fail("{}: write after commit", path_);
  if (n && std::fwrite(data, 1, n, f_) != n) fail_as(ErrorKind::Io, "cannot write {}: {}", tmp_, std::strerror(errno));
}

void OutputFile::commit() {
  if (!f_) fail("{}: committed twice", path_);
  if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0)
    fail_as(ErrorKind::Io, "cannot write {}: {}", tmp_, std::strerror(errno));
  if (::fchmod(fileno(f_), 0666 & ~current_umask()) != 0)
    fail_as(ErrorKind::Io, "cannot set the mode of {}: {}", tmp_, std::strerror(errno));
  const int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) fail_as(ErrorKind::Io, "cannot write {}: {}", tmp_, std::strerror(errno));
  // The target may have appeared or changed kind while the data was written.
  check_output_path(path_, replace_);
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail_as(ErrorKind::Io, "cannot rename {} to {}: {}", tmp_, path_, std::strerror(errno));
  committed_ = true;
  fsync_directory(parent_of(path_));
}

void write_output_file(const std::string& path, std::string_view content, Replace replace) {
  OutputFile f(path, replace);
  f.write(content);
  f.commit();
}

}  // namespace moeflux
