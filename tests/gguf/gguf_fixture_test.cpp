// Interoperability with gguf-py (llama.cpp's Python package), both ways:
// files gguf-py wrote must read here exactly as GGUFReader reads them (the
// JSON beside each file, written by scripts/gen_gguf_fixtures.py), and our
// writer, given the same content, must reproduce gguf-py's bytes exactly.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "format/gguf/gguf_file.h"
#include "format/gguf/gguf_writer.h"
#include "gguf_test_util.h"
#include "test_util.h"

using namespace moeflux;
using nlohmann::json;

namespace {

const std::vector<std::string> kFixtures = {"all_types_v3", "all_types_v2", "align64",        "align1",
                                            "no_tensors",   "tiny_qwen3moe", "tiny_llama_spm", "writer_ref"};

std::string gguf_path(const std::string& name) { return test::fixture("gguf/" + name + ".gguf"); }

template <typename T>
T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

GgufValue value_from_json(const json& j);

GgufArray array_from_json(const json& j) {
  const std::string elem = j.at("elem");
  GgufArray a;
  auto fill = [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> v;
    for (auto& item : j.at("items")) v.push_back(std::get<T>(value_from_json(item).data));
    a.data = std::move(v);
  };
  if (elem == "uint8") fill(uint8_t{});
  else if (elem == "int8") fill(int8_t{});
  else if (elem == "uint16") fill(uint16_t{});
  else if (elem == "int16") fill(int16_t{});
  else if (elem == "uint32") fill(uint32_t{});
  else if (elem == "int32") fill(int32_t{});
  else if (elem == "float32") fill(float{});
  else if (elem == "uint64") fill(uint64_t{});
  else if (elem == "int64") fill(int64_t{});
  else if (elem == "float64") fill(double{});
  else if (elem == "string") fill(std::string{});
  else if (elem == "array") fill(GgufArray{});
  else if (elem == "bool") {
    std::vector<bool> v;
    for (auto& item : j.at("items")) v.push_back(item.at("value").get<bool>());
    a.data = std::move(v);
  } else {
    throw std::runtime_error("unknown elem " + elem);
  }
  return a;
}

GgufValue value_from_json(const json& j) {
  const std::string t = j.at("type");
  if (t == "uint8") return {j.at("value").get<uint8_t>()};
  if (t == "int8") return {j.at("value").get<int8_t>()};
  if (t == "uint16") return {j.at("value").get<uint16_t>()};
  if (t == "int16") return {j.at("value").get<int16_t>()};
  if (t == "uint32") return {j.at("value").get<uint32_t>()};
  if (t == "int32") return {j.at("value").get<int32_t>()};
  if (t == "uint64") return {j.at("value").get<uint64_t>()};
  if (t == "int64") return {j.at("value").get<int64_t>()};
  if (t == "float32") return {from_bits<float>(j.at("bits").get<uint32_t>())};
  if (t == "float64") return {from_bits<double>(j.at("bits").get<uint64_t>())};
  if (t == "bool") return {j.at("value").get<bool>()};
  if (t == "string") return {j.at("value").get<std::string>()};
  if (t == "array") return {array_from_json(j)};
  throw std::runtime_error("unknown type " + t);
}

class GgufFixture : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(GgufFixture, ReadsWhatGgufPyReads) {
  const std::string name = GetParam();
  const json want = json::parse(test::read_file(test::fixture("gguf/" + name + ".json")));
  const GgufFile f(gguf_path(name));
  EXPECT_EQ(f.version(), want.at("version").get<uint32_t>());
  EXPECT_EQ(f.alignment(), want.at("alignment").get<uint64_t>());
  EXPECT_EQ(f.data_offset(), want.at("data_offset").get<uint64_t>());
  EXPECT_EQ(f.file_size(), want.at("file_size").get<uint64_t>());

  const auto& meta = want.at("metadata");
  ASSERT_EQ(f.metadata().size(), meta.size());
  for (size_t i = 0; i < meta.size(); ++i) {
    const auto& [key, value] = f.metadata().entries()[i];
    EXPECT_EQ(key, meta[i].at("key").get<std::string>()) << "entry " << i;
    EXPECT_TRUE(gguf_identical(value, value_from_json(meta[i])))
        << key << ": " << gguf_value_summary(value) << " vs " << meta[i].dump().substr(0, 200);
  }

  const auto& tensors = want.at("tensors");
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensor& t = f.tensors()[i];
    const json& w = tensors[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, w.at("name").get<std::string>());
    EXPECT_EQ(uint32_t(t.type), w.at("type").get<uint32_t>());
    EXPECT_EQ(t.dims, w.at("dims").get<std::vector<uint64_t>>());
    EXPECT_EQ(t.n_elements, w.at("n_elements").get<uint64_t>());
    EXPECT_EQ(t.offset, w.at("offset").get<uint64_t>());
    EXPECT_EQ(t.nbytes, w.at("nbytes").get<uint64_t>());
    EXPECT_EQ(fmt::format("{:016x}", test::fnv1a64(t.bytes())), w.at("fnv1a64").get<std::string>());
    EXPECT_EQ(&f.tensor(t.name), &t);
  }
}

// Re-write each file from what we read and compare bytes with gguf-py's.
// v2 and v3 share a layout; our writer writes v3, so the v2 file differs in
// its version field only.
TEST_P(GgufFixture, WriterReproducesGgufPyBytes) {
  const std::string name = GetParam();
  const std::string original = test::read_file(gguf_path(name));
  const GgufFile f(gguf_path(name));
  std::vector<GgufTensorDecl> decls;
  for (auto& t : f.tensors()) decls.push_back({t.name, t.type, t.dims});
  test::TempDir d;
  const std::string out = d.file("out.gguf");
  {
    GgufWriter w(out, f.metadata(), decls);
    EXPECT_EQ(w.data_offset(), f.data_offset());
    for (auto& t : f.tensors()) w.write_tensor(t.name, t.bytes());
    w.finish();
  }
  std::string expect = original;
  if (f.version() == 2) expect[4] = 3;
  const std::string got = test::read_file(out);
  ASSERT_EQ(got.size(), expect.size());
  EXPECT_TRUE(got == expect) << "first difference at byte "
                             << std::mismatch(got.begin(), got.end(), expect.begin()).first - got.begin();
}

INSTANTIATE_TEST_SUITE_P(GgufPy, GgufFixture, ::testing::ValuesIn(kFixtures));

// The writer from constants alone (not from what the reader produced): the
// same content as writer_ref() in the fixture script, which gguf-py wrote.
TEST(GgufWriterTest, MatchesGgufPyByteForByte) {
  GgufMetadata m;
  m.add("general.architecture", {std::string("ref")});
  m.add("ref.u32", {uint32_t(7)});
  m.add("ref.f32", {0.5f});
  m.add("ref.str", {std::string("hi")});
  // gguf-py stores Python ints in arrays as int32.
  m.add("ref.arr", {GgufArray{std::vector<GgufArray>{GgufArray{std::vector<int32_t>{1, 2}},
                                                     GgufArray{std::vector<int32_t>{3}}}}});
  std::vector<float> w(6);
  for (int i = 0; i < 6; ++i) w[size_t(i)] = float(i);
  std::vector<uint8_t> q(68);
  for (int i = 0; i < 68; ++i) q[size_t(i)] = uint8_t(i);
  test::TempDir d;
  GgufWriter wr(d.file("ref.gguf"), m, {{"w", GgmlType::F32, {3, 2}}, {"q", GgmlType::Q8_0, {32, 2}}});
  wr.write({reinterpret_cast<const uint8_t*>(w.data()), w.size() * 4});
  // Streamed in uneven pieces across the padding: bounded memory for big tensors.
  wr.write({q.data(), 5});
  wr.write({q.data() + 5, 60});
  wr.write({q.data() + 65, 3});
  wr.finish();
  EXPECT_TRUE(test::read_file(d.file("ref.gguf")) == test::read_file(gguf_path("writer_ref")));
}

TEST(GgufFixtureModel, StackedExpertsHaveGgufOrderShapes) {
  const GgufFile f(gguf_path("tiny_qwen3moe"));
  const GgufMetadata& m = f.metadata();
  EXPECT_EQ(m.get_str("general.architecture"), "qwen3moe");
  const uint32_t n_embd = m.get_u32("qwen3moe.embedding_length");
  const uint32_t n_ff = m.get_u32("qwen3moe.expert_feed_forward_length");
  const uint32_t n_expert = m.get_u32("qwen3moe.expert_count");
  EXPECT_EQ(m.get_u32("qwen3moe.expert_used_count"), 2u);
  EXPECT_EQ(m.get_u32("qwen3moe.block_count"), 1u);
  EXPECT_FLOAT_EQ(m.get_f32("qwen3moe.rope.freq_base"), 1e6f);
  EXPECT_FLOAT_EQ(m.get_f32("qwen3moe.attention.layer_norm_rms_epsilon"), 1e-6f);
  const GgufTensor& gate = f.tensor("blk.0.ffn_gate_exps.weight");
  EXPECT_EQ(gate.type, GgmlType::Q8_0);
  EXPECT_EQ(gate.dims, (std::vector<uint64_t>{n_embd, n_ff, n_expert}));
  // Expert e is the slice at e * stride: stride = rows per expert * row bytes.
  EXPECT_EQ(gate.nbytes % n_expert, 0u);
  EXPECT_EQ(gate.nbytes / n_expert, uint64_t(n_ff) * (n_embd / 32) * 34);
  const GgufTensor& down = f.tensor("blk.0.ffn_down_exps.weight");
  EXPECT_EQ(down.dims, (std::vector<uint64_t>{n_ff, n_embd, n_expert}));
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").dims, (std::vector<uint64_t>{n_embd, 64}));
  EXPECT_EQ(f.tensor("token_embd.weight").type, GgmlType::F16);
  EXPECT_EQ(f.find_tensor("blk.1.attn_q.weight"), nullptr);
  const std::string e = test::error_of([&] { f.tensor("blk.1.attn_q.weight"); });
  EXPECT_NE(e.find("'blk.1.attn_q.weight' not found"), std::string::npos) << e;
  EXPECT_NE(e.find("tiny_qwen3moe.gguf"), std::string::npos) << e;
}

// A moved GgufFile keeps its map, so tensor pointers taken before the move stay valid.
TEST(GgufFixtureModel, MoveKeepsTensorPointers) {
  GgufFile a(gguf_path("align64"));
  const uint8_t* p = a.tensors()[0].data;
  const uint64_t h = test::fnv1a64(a.tensors()[0].bytes());
  GgufFile b(std::move(a));
  EXPECT_EQ(b.tensors()[0].data, p);
  EXPECT_EQ(test::fnv1a64(b.tensors()[0].bytes()), h);
}
