#pragma once
// Readers for the fixtures written by scripts/gen_tokenizer_fixtures.py
// (format described in its docstring).
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace moeflux::testing {

inline std::string gunzip_file(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) throw std::runtime_error("cannot open " + path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  gzclose(gz);
  if (n < 0) throw std::runtime_error("gzip error in " + path);
  return out;
}

class ByteReader {
 public:
  explicit ByteReader(std::string data) : d_(std::move(data)) {}
  uint32_t u32() {
    need(4);
    uint32_t v;
    std::memcpy(&v, d_.data() + p_, 4);
    p_ += 4;
    return v;
  }
  std::string bytes(size_t n) {
    need(n);
    std::string s = d_.substr(p_, n);
    p_ += n;
    return s;
  }
  void magic(const char* m) {
    if (bytes(4) != m) throw std::runtime_error(std::string("bad fixture magic, expected ") + m);
  }
  bool done() const { return p_ == d_.size(); }

 private:
  void need(size_t n) {
    if (p_ + n > d_.size()) throw std::runtime_error("truncated fixture");
  }
  std::string d_;
  size_t p_ = 0;
};

inline std::string fixture_dir() { return std::string(MOEFLUX_SOURCE_DIR) + "/tests/fixtures/tokenizer"; }
inline std::string shared_tokenizers_dir() { return std::string(MOEFLUX_SHARED_DIR) + "/tokenizers"; }

inline std::vector<std::string> read_corpus() {
  ByteReader r(gunzip_file(fixture_dir() + "/corpus.bin.gz"));
  r.magic("MFTC");
  if (r.u32() != 1) throw std::runtime_error("corpus version");
  uint32_t n = r.u32();
  std::vector<std::string> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) out.push_back(r.bytes(r.u32()));
  return out;
}

struct Expected {
  std::vector<int32_t> plain, special;
  // HF decode output; empty optional-like flag when equal to the text.
  bool plain_dec_same = true, skip_dec_same = true;
  std::string plain_dec, skip_dec;
};

inline std::vector<Expected> read_expected(const std::string& name) {
  ByteReader r(gunzip_file(fixture_dir() + "/" + name + ".ids.bin.gz"));
  r.magic("MFTI");
  if (r.u32() != 1) throw std::runtime_error("ids version");
  uint32_t n = r.u32();
  std::vector<Expected> out(n);
  auto ids = [&](std::vector<int32_t>& v) {
    uint32_t k = r.u32();
    v.resize(k);
    for (auto& x : v) x = int32_t(r.u32());
  };
  auto dec = [&](bool& same, std::string& s) {
    uint32_t k = r.u32();
    same = k == 0;
    if (k) s = r.bytes(k - 1);
  };
  for (auto& e : out) {
    ids(e.plain);
    ids(e.special);
    dec(e.plain_dec_same, e.plain_dec);
    dec(e.skip_dec_same, e.skip_dec);
  }
  if (!r.done()) throw std::runtime_error("trailing bytes in " + name);
  return out;
}

}  // namespace moeflux::testing
