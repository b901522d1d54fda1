// Helpers shared by the test areas (header-only: each area is one binary).
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "format/safetensors.h"
#include "moeflux/error.h"

namespace moeflux::test {

inline std::string fixture(const std::string& rel) { return std::string(MOEFLUX_SOURCE_DIR) + "/tests/fixtures/" + rel; }

template <typename T>
std::vector<T> tensor_values(const TensorRef& t) {
  std::vector<T> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * sizeof(T));
  return v;
}

// A scratch directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "moeflux-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The message of the moeflux::Error f() throws, or "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CliResult {
  int code;
  std::string out, err;
};

// Runs the moeflux CLI with `args` (shell-quoted by the caller).
inline CliResult run_cli(const std::string& args) {
  TempDir tmp;
  const std::string cmd = std::string(MOEFLUX_CLI) + " " + args + " >" + tmp.file("out") + " 2>" + tmp.file("err");
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(tmp.file("out")), read_file(tmp.file("err"))};
}

}  // namespace moeflux::test
