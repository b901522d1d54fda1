#include "format/gguf/gguf_value.h"

#include <gtest/gtest.h>

#include <cmath>

#include "moeflux/error.h"

using namespace moeflux;

namespace {

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

GgufMetadata sample() {
  GgufMetadata m("x.gguf");
  m.add("u8", {uint8_t(200)});
  m.add("i32neg", {int32_t(-5)});
  m.add("i32", {int32_t(7)});
  m.add("u64big", {uint64_t(1) << 40});
  m.add("f32", {1.5f});
  m.add("f64", {0.1});
  m.add("b", {true});
  m.add("s", {std::string("hello")});
  m.add("toks", {GgufArray{std::vector<std::string>{"a", "b"}}});
  return m;
}

}  // namespace

TEST(GgufValue, IntegerGettersConvertLosslesslyAndRefuseOutOfRange) {
  const GgufMetadata m = sample();
  EXPECT_EQ(m.get_u32("u8"), 200u);
  EXPECT_EQ(m.get_i64("i32neg"), -5);
  EXPECT_EQ(m.get_u32("i32"), 7u);
  EXPECT_EQ(m.get_u64("u64big"), uint64_t(1) << 40);
  std::string e = error_of([&] { m.get_u32("i32neg"); });
  EXPECT_NE(e.find("x.gguf"), std::string::npos) << e;
  EXPECT_NE(e.find("'i32neg'"), std::string::npos) << e;
  EXPECT_NE(e.find("does not fit uint32"), std::string::npos) << e;
  e = error_of([&] { m.get_u32("u64big"); });
  EXPECT_NE(e.find("does not fit uint32"), std::string::npos) << e;
}

TEST(GgufValue, GettersNameKeyExpectedAndFoundTypes) {
  const GgufMetadata m = sample();
  std::string e = error_of([&] { m.get_u32("s"); });
  EXPECT_NE(e.find("'s': expected uint32, found string"), std::string::npos) << e;
  e = error_of([&] { m.get_str("f32"); });
  EXPECT_NE(e.find("expected string, found float32"), std::string::npos) << e;
  e = error_of([&] { m.get_bool("i32"); });
  EXPECT_NE(e.find("expected bool, found int32"), std::string::npos) << e;
  e = error_of([&] { m.get_u32("b"); });
  EXPECT_NE(e.find("expected uint32, found bool"), std::string::npos) << e;
  e = error_of([&] { m.get_array_of<float>("toks"); });
  EXPECT_NE(e.find("expected array of float32, found array of string"), std::string::npos) << e;
  e = error_of([&] { m.get_f32("missing.key"); });
  EXPECT_NE(e.find("'missing.key' (float32) is missing"), std::string::npos) << e;
  EXPECT_FLOAT_EQ(m.get_f32("f64"), 0.1f);
  EXPECT_DOUBLE_EQ(m.get_f64("f32"), 1.5);
  EXPECT_EQ(m.get_str("s"), "hello");
  EXPECT_EQ(m.get_array_of<std::string>("toks").size(), 2u);
  EXPECT_FALSE(m.opt_u32("nope").has_value());
  EXPECT_THROW(m.opt_u32("s"), Error);
}

TEST(GgufValue, DuplicateAndEmptyKeysAreRefused) {
  GgufMetadata m = sample();
  EXPECT_NE(error_of([&] { m.add("s", {1.0f}); }).find("'s' appears twice"), std::string::npos);
  EXPECT_NE(error_of([&] { m.add("", {1.0f}); }).find("empty"), std::string::npos);
}

TEST(GgufValue, IdenticalComparesBitsNotValues) {
  const float nan = std::nanf("1");
  EXPECT_TRUE(gguf_identical(GgufValue{nan}, GgufValue{nan}));
  EXPECT_FALSE(gguf_identical(GgufValue{0.0f}, GgufValue{-0.0f}));
  EXPECT_FALSE(gguf_identical(GgufValue{uint32_t(1)}, GgufValue{int32_t(1)}));
  GgufArray nested{std::vector<GgufArray>{GgufArray{std::vector<int8_t>{1, 2}}, GgufArray{std::vector<bool>{true}}}};
  GgufArray nested2 = nested;
  EXPECT_TRUE(gguf_identical(nested, nested2));
  std::get<std::vector<GgufArray>>(nested2.data)[1] = GgufArray{std::vector<bool>{false}};
  EXPECT_FALSE(gguf_identical(nested, nested2));
  EXPECT_EQ(gguf_value_summary(GgufValue{nested}), "array[array; 2]");
}
