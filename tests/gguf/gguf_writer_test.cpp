#include "format/gguf/gguf_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <random>

#include "format/gguf/gguf_file.h"
#include "gguf_test_util.h"
#include "test_util.h"

using namespace moeflux;

namespace {

#define EXPECT_ERROR_HAS(err, text) EXPECT_NE((err).find(text), std::string::npos) << "error: " << (err)

GgufMetadata every_type() {
  GgufMetadata m;
  m.add("general.architecture", {std::string("test")});
  m.add("u8", {uint8_t(255)});
  m.add("i8", {int8_t(-128)});
  m.add("u16", {uint16_t(65535)});
  m.add("i16", {int16_t(-32768)});
  m.add("u32", {uint32_t(4294967295u)});
  m.add("i32", {int32_t(std::numeric_limits<int32_t>::min())});
  m.add("f32", {std::numeric_limits<float>::quiet_NaN()});
  m.add("bool", {true});
  m.add("str", {std::string("with\0nul", 8)});
  m.add("u64", {std::numeric_limits<uint64_t>::max()});
  m.add("i64", {std::numeric_limits<int64_t>::min()});
  m.add("f64", {-0.0});
  m.add("arr.empty", {GgufArray{std::vector<float>{}}});
  m.add("arr.bool", {GgufArray{std::vector<bool>{true, false, true}}});
  m.add("arr.str", {GgufArray{std::vector<std::string>{"", "a", std::string(1000, 'z')}}});
  m.add("arr.u64", {GgufArray{std::vector<uint64_t>{1, 2, 3}}});
  m.add("arr.f64", {GgufArray{std::vector<double>{0.5, -1e300}}});
  m.add("arr.nested",
        {GgufArray{std::vector<GgufArray>{
            GgufArray{std::vector<GgufArray>{GgufArray{std::vector<int16_t>{-1, 2}}, GgufArray{std::vector<uint8_t>{}}}},
            GgufArray{std::vector<std::string>{"x"}}}}});
  return m;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

}  // namespace

TEST(GgufWriter, RoundTripsEveryValueTypeAndTensorType) {
  const GgufMetadata m = every_type();
  const std::vector<GgufTensorDecl> decls = {
      {"f32", GgmlType::F32, {7, 3}},       {"f16", GgmlType::F16, {5}},           {"q8_0", GgmlType::Q8_0, {64, 3, 2}},
      {"q4_k", GgmlType::Q4_K, {256, 2, 1, 3}}, {"mxfp4", GgmlType::MXFP4, {32}}, {"i8", GgmlType::I8, {1}},
      {"bf16", GgmlType::BF16, {3, 3}},     {"scalar", GgmlType::F32, {}}};
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < decls.size(); ++i) data.push_back(random_bytes(decls[i].nbytes(), uint32_t(i)));
  test::TempDir d;
  {
    GgufWriter w(d.file("rt.gguf"), m, decls);
    for (size_t i = 0; i < decls.size(); ++i) w.write_tensor(decls[i].name, data[i]);
    w.finish();
  }
  const GgufFile f(d.file("rt.gguf"));
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata().size(), m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(f.metadata().entries()[i].first, m.entries()[i].first);
    EXPECT_TRUE(gguf_identical(f.metadata().entries()[i].second, m.entries()[i].second)) << m.entries()[i].first;
  }
  ASSERT_EQ(f.tensors().size(), decls.size());
  for (size_t i = 0; i < decls.size(); ++i) {
    const GgufTensor& t = f.tensors()[i];
    EXPECT_EQ(t.name, decls[i].name);
    EXPECT_EQ(t.type, decls[i].type);
    EXPECT_EQ(t.dims, decls[i].dims);
    EXPECT_EQ(t.offset % 32, 0u);
    ASSERT_EQ(t.nbytes, data[i].size());
    EXPECT_TRUE(std::equal(data[i].begin(), data[i].end(), t.data)) << t.name;
  }
  EXPECT_EQ(f.tensor("scalar").n_elements, 1u);
  EXPECT_EQ(f.tensor("q4_k").nbytes, 6u * 144);
}

TEST(GgufWriter, HonoursGeneralAlignment) {
  for (uint32_t align : {1u, 8u, 64u, 4096u}) {
    GgufMetadata m;
    m.add("general.alignment", {align});
    test::TempDir d;
    GgufWriter w(d.file("a.gguf"), m, {{"a", GgmlType::F32, {3}}, {"b", GgmlType::F16, {3}}, {"c", GgmlType::F32, {1}}});
    EXPECT_EQ(w.data_offset() % align, 0u);
    const std::vector<uint8_t> bytes(12 + 6 + 4, 7);
    w.write(bytes);  // one chunk spanning all three tensors
    w.finish();
    const GgufFile f(d.file("a.gguf"));
    EXPECT_EQ(f.alignment(), align);
    for (auto& t : f.tensors()) EXPECT_EQ((t.offset - f.data_offset()) % align, 0u) << align << " " << t.name;
    EXPECT_EQ(f.tensor("b").offset - f.tensor("a").offset, (12 + align - 1) / align * align);  // 12 bytes, padded
  }
}

TEST(GgufWriter, StreamsInAnyChunkingWithTheSameBytes) {
  const std::vector<GgufTensorDecl> decls = {{"a", GgmlType::Q8_0, {32, 5}}, {"b", GgmlType::F32, {3}},
                                             {"c", GgmlType::Q6_K, {256}}};
  uint64_t total = 0;
  for (auto& t : decls) total += t.nbytes();
  const std::vector<uint8_t> data = random_bytes(total, 99);
  test::TempDir d;
  std::string first;
  for (size_t chunk : {size_t(1), size_t(7), size_t(33), size_t(total)}) {
    std::string name = std::to_string(chunk);  // not "c" + to_string(): GCC 12 warns falsely (-Wrestrict)
    name += ".gguf";
    const std::string path = d.file(name);
    GgufWriter w(path, every_type(), decls);
    for (size_t off = 0; off < data.size(); off += chunk)
      w.write({data.data() + off, std::min(chunk, data.size() - off)});
    w.finish();
    const std::string bytes = test::read_file(path);
    if (first.empty()) first = bytes;
    EXPECT_TRUE(bytes == first) << "chunk " << chunk;
  }
}

size_t entries(const std::string& dir) {
  return size_t(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()));
}

TEST(GgufWriter, IsAtomicAndChecksWhatIsWritten) {
  test::TempDir d;
  const std::string path = d.file("x.gguf");
  const std::vector<GgufTensorDecl> decls = {{"a", GgmlType::F32, {4}}, {"b", GgmlType::F32, {2}}};
  const std::vector<uint8_t> a(16), b(8), wrong(12);
  {
    GgufWriter w(path, {}, decls);
    EXPECT_EQ(entries(d.path()), 1u);  // the temporary, under another name
    EXPECT_FALSE(std::filesystem::exists(path));
    std::string e = test::error_of([&] { w.write_tensor("b", b); });
    EXPECT_ERROR_HAS(e, "tensor 'b' written where 'a' is next");
    e = test::error_of([&] { w.write_tensor("a", wrong); });
    EXPECT_ERROR_HAS(e, "tensor 'a': 12 bytes given, its shape [4] as F32 takes 16");
    w.write_tensor("a", a);
    e = test::error_of([&] { w.finish(); });
    EXPECT_ERROR_HAS(e, "tensor 'b' has 0 of 8 bytes written");
    EXPECT_FALSE(std::filesystem::exists(path));
  }  // abandoned: the temporary is removed
  EXPECT_EQ(entries(d.path()), 0u);
  {
    GgufWriter w(path, {}, decls);
    w.write_tensor("a", a);
    w.write_tensor("b", b);
    const std::string e = test::error_of([&] { w.write(b); });
    EXPECT_ERROR_HAS(e, "8 bytes written past the last declared tensor");
    w.finish();
  }
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(entries(d.path()), 1u);  // the file alone
  EXPECT_EQ(GgufFile(path).tensors().size(), 2u);
}

TEST(GgufWriter, RefusesWhatReadersWouldRefuse) {
  test::TempDir d;
  const std::string p = d.file("bad.gguf");
  auto err = [&](const GgufMetadata& m, std::vector<GgufTensorDecl> t) {
    return test::error_of([&] { GgufWriter w(p, m, std::move(t)); });
  };
  EXPECT_ERROR_HAS(err({}, {{"a", GgmlType::F32, {4}}, {"a", GgmlType::F32, {4}}}), "tensor 'a' is declared twice");
  EXPECT_ERROR_HAS(err({}, {{"", GgmlType::F32, {4}}}), "empty name");
  EXPECT_ERROR_HAS(err({}, {{std::string(64, 'n'), GgmlType::F32, {4}}}), "name is 64 bytes; llama.cpp accepts at most 63");
  EXPECT_ERROR_HAS(err({}, {{"q", GgmlType::Q4_K, {128, 2}}}), "row length 128 is not a multiple of the Q4_K block size 256");
  EXPECT_ERROR_HAS(err({}, {{"z", GgmlType::F32, {4, 0}}}), "zero dimension");
  EXPECT_ERROR_HAS(err({}, {{"five", GgmlType::F32, {1, 1, 1, 1, 1}}}), "5 dims, at most 4");
  EXPECT_ERROR_HAS(err({}, {{"huge", GgmlType::F32, {uint64_t(1) << 40, uint64_t(1) << 40}}}), "overflows");
  EXPECT_ERROR_HAS(err({}, {{"t", GgmlType(4), {32}}}), "unknown ggml type id 4");
  GgufMetadata bad_align;
  bad_align.add("general.alignment", {uint32_t(48)});
  EXPECT_ERROR_HAS(err(bad_align, {}), "'general.alignment' = 48 is not a non-zero power of two");
  GgufMetadata typed_align;
  typed_align.add("general.alignment", {uint64_t(32)});
  EXPECT_ERROR_HAS(err(typed_align, {}), "must be uint32, found uint64");
  GgufMetadata deep;
  GgufArray a{std::vector<int32_t>{1}};
  for (int i = 0; i < 20; ++i) a = GgufArray{std::vector<GgufArray>{a}};
  deep.add("deep", {a});
  EXPECT_ERROR_HAS(err(deep, {}), "nested deeper than 16");
  EXPECT_FALSE(std::filesystem::exists(p));
  EXPECT_FALSE(std::filesystem::exists(p + ".partial"));
}

TEST(GgufWriter, HeaderBytesMatchTheWrittenFile) {
  const GgufMetadata m = every_type();
  const std::vector<GgufTensorDecl> decls = {{"a", GgmlType::F32, {3}}, {"b", GgmlType::Q8_0, {32}}};
  std::vector<uint64_t> rel;
  const std::string header = gguf_header_bytes(m, decls, "mem", &rel);
  EXPECT_EQ(rel, (std::vector<uint64_t>{0, 32}));
  EXPECT_EQ(header.size() % 32, 0u);
  test::TempDir d;
  GgufWriter w(d.file("h.gguf"), m, decls);
  w.write(std::vector<uint8_t>(12 + 34, 1));
  w.finish();
  EXPECT_EQ(test::read_file(d.file("h.gguf")).substr(0, header.size()), header);
  EXPECT_EQ(w.data_offset(), header.size());
}
