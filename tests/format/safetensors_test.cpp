#include "format/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "format/safetensors_writer.h"
#include "moeflux/error.h"
#include "test_util.h"

using namespace moeflux;

namespace {

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(v >> (8 * i));
  return s;
}

std::string file_with_header(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\x01');
}

std::string load_error(const std::string& bytes) {
  test::TempDir d;
  test::write_file(d.file("m.safetensors"), bytes);
  try {
    SafetensorsFile f(d.file("m.safetensors"));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ReadsAValidFile) {
  test::TempDir d;
  test::write_file(d.file("m.safetensors"),
                   file_with_header(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                                    R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"__metadata__":{"k":"v"}})",
                                    32));
  SafetensorsFile f(d.file("m.safetensors"));
  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorRef& a = f.tensors().at("a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(f.metadata().at("k"), "v");
}

TEST(Safetensors, TruncatedFileIsRefused) {
  const std::string good = file_with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16);
  EXPECT_NE(load_error(good.substr(0, good.size() - 3)).find("truncated"), std::string::npos);
  EXPECT_NE(load_error(good.substr(0, 5)).find("shorter than"), std::string::npos);
  EXPECT_NE(load_error(good.substr(0, 20)).find("runs past the end"), std::string::npos);
}

TEST(Safetensors, HeaderThatLiesAboutSizesIsRefused) {
  const std::string e = load_error(file_with_header(R"({"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})", 16));
  EXPECT_NE(e.find("'a'"), std::string::npos) << e;
  EXPECT_NE(e.find("needs 20 bytes"), std::string::npos) << e;
}

TEST(Safetensors, MalformedHeadersAreRefused) {
  EXPECT_NE(load_error(le64(uint64_t(1) << 40) + "{}").find("header length"), std::string::npos);
  EXPECT_NE(load_error(file_with_header("{not json", 0)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error(file_with_header("[1,2]", 0)).find("JSON object"), std::string::npos);
  EXPECT_NE(load_error(file_with_header(R"({"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}})", 1))
                .find("unknown dtype 'Q9'"),
            std::string::npos);
  EXPECT_NE(load_error(file_with_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4))
                .find("non-negative"),
            std::string::npos);
  EXPECT_NE(load_error(file_with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8))
                .find("reversed"),
            std::string::npos);
  EXPECT_NE(load_error(file_with_header(R"({"a":{"dtype":"F32","shape":[1]}})", 4)).find("data_offsets"),
            std::string::npos);
}

TEST(Safetensors, OverlappingTensorsAreRefused) {
  const std::string e = load_error(file_with_header(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
  EXPECT_NE(e.find("overlap"), std::string::npos) << e;
}

TEST(Safetensors, WriterRoundTripsAndShardsWithAnIndex) {
  test::TempDir d;
  std::vector<TensorDecl> decls = {{"x", DType::F32, {3}}, {"y", DType::BF16, {2, 2}}, {"z", DType::F32, {5}}};
  auto shards = plan_shards(decls, 16);
  ASSERT_EQ(shards.size(), 3u);  // 12, 8 and 20 bytes: no two fit in 16
  uint8_t v = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    SafetensorsWriter w(d.file(shard_name(i, shards.size())), shards[i]);
    for (auto& t : shards[i]) {
      std::vector<uint8_t> bytes(t.nbytes());
      for (auto& b : bytes) b = v++;
      w.write(bytes);
    }
    w.finish();
  }
  test::write_file(d.file("model.safetensors.index.json"), shard_index_json(shards));
  SafetensorsModel m(d.path());
  EXPECT_EQ(m.tensors().size(), 3u);
  EXPECT_EQ(m.get("y").data[0], 12);
  EXPECT_EQ(m.get("z").data[19], 39);
  EXPECT_THROW(m.get("missing"), Error);
}

TEST(Safetensors, IndexThatDisagreesWithShardsIsRefused) {
  test::TempDir d;
  std::vector<TensorDecl> decls = {{"x", DType::F32, {1}}};
  SafetensorsWriter w(d.file("model-00001-of-00001.safetensors"), decls);
  w.write(std::vector<uint8_t>(4, 0));
  w.finish();
  test::write_file(d.file("model.safetensors.index.json"),
                   R"({"weight_map":{"x":"model-00001-of-00001.safetensors","w":"model-00001-of-00001.safetensors"}})");
  try {
    SafetensorsModel m(d.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'w'"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, UnfinishedWriterLeavesNoFile) {
  test::TempDir d;
  {
    SafetensorsWriter w(d.file("m.safetensors"), {{"x", DType::F32, {4}}});
    w.write(std::vector<uint8_t>(8, 0));
    EXPECT_THROW(w.finish(), Error);
  }
  EXPECT_FALSE(std::filesystem::exists(d.file("m.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(d.file("m.safetensors.partial")));
}

}  // namespace
