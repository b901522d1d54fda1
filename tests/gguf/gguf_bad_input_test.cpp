// Malformed GGUF: every case must be a moeflux::Error whose message names the
// file, what is wrong and where (key or tensor, byte offset) — never a crash.
#include <gtest/gtest.h>

#include <set>

#include "format/gguf/gguf_file.h"
#include "gguf_test_util.h"
#include "test_util.h"

using namespace moeflux;
using test::Bytes;
using test::parse_error;

namespace {

#define EXPECT_ERROR_HAS(err, text) EXPECT_NE((err).find(text), std::string::npos) << "error: " << (err)

// A valid file with one F32 [4] tensor named "t" and one u32 key: the base most cases mutate.
Bytes valid_one_tensor(uint64_t offset = 0, uint32_t type = 0, uint64_t ne0 = 4) {
  Bytes b;
  b.header(1, 1).kv_u32("k", 1).tensor("t", {ne0}, type, offset).pad_to(32).zeros(64);
  return b;
}

}  // namespace

TEST(GgufBadInput, TheBaseCaseParses) {
  const std::string bytes = valid_one_tensor().s;
  const GgufContents c = parse_gguf(test::as_span(bytes), "ok.gguf");
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_EQ(c.tensors[0].nbytes, 16u);
  EXPECT_EQ(c.tensors[0].offset, c.data_offset);
  EXPECT_EQ(c.data_offset % 32, 0u);
}

// Cut real files at every header byte (and through their data): each prefix short of the last tensor's end
// is refused with a message about truncation (or a count the rest cannot hold).
TEST(GgufBadInput, TruncatedAtEveryHeaderByteIsRefused) {
  for (const char* name : {"all_types_v3", "tiny_llama_spm", "align1", "no_tensors"}) {
    const std::string full = test::read_file(test::fixture(std::string("gguf/") + name + ".gguf"));
    const GgufContents c = parse_gguf(test::as_span(full), name);
    // Every prefix shorter than the shortest complete one is refused with a
    // clear message; from there on every prefix parses. The shortest complete
    // prefix ends at the last tensor byte, or for a file without tensors at the
    // end of its metadata (past data_offset - alignment).
    uint64_t tensors_end = 0;
    for (auto& t : c.tensors) tensors_end = std::max(tensors_end, t.offset + t.nbytes);
    // Every byte through the header; in the tensor data (one code path) a
    // stride plus the bytes around each tensor's end.
    std::set<size_t> cuts;
    for (size_t n = 0; n < full.size(); ++n)
      if (n <= c.data_offset + 64 || n % 61 == 0) cuts.insert(n);
    for (auto& t : c.tensors)
      for (uint64_t n : {t.offset + t.nbytes - 1, t.offset + t.nbytes, t.offset + t.nbytes + 1})
        if (n < full.size()) cuts.insert(size_t(n));
    size_t first_ok = full.size();
    for (size_t n : cuts) {
      const std::string e = parse_error(full.substr(0, n), name);
      if (e.empty()) {
        if (first_ok == full.size()) first_ok = n;
        continue;
      }
      ASSERT_EQ(first_ok, full.size()) << name << ": cut at " << n << " refused after cut at " << first_ok << " parsed";
      EXPECT_ERROR_HAS(e, name);
      const bool clear = e.find("truncated") != std::string::npos || e.find("implausible") != std::string::npos ||
                         e.find("shorter than") != std::string::npos;
      EXPECT_TRUE(clear) << name << " cut at " << n << ": " << e;
    }
    if (c.tensors.empty()) {
      EXPECT_GT(first_ok, c.data_offset - c.alignment) << name;
      EXPECT_LE(first_ok, c.data_offset) << name;
    } else {
      EXPECT_EQ(first_ok, tensors_end) << name;
    }
  }
}

TEST(GgufBadInput, EmptyAndNonGgufFilesAreRefused) {
  test::TempDir d;
  test::write_file(d.file("empty.gguf"), "");
  std::string e = test::error_of([&] { GgufFile f(d.file("empty.gguf")); });
  EXPECT_ERROR_HAS(e, "empty.gguf");
  EXPECT_ERROR_HAS(e, "shorter than the 4-byte magic");
  EXPECT_ERROR_HAS(parse_error("GGML\x03\0\0\0"), "magic bytes 47 47 4d 4c");
  e = test::error_of([&] { GgufFile f(d.file("missing.gguf")); });
  EXPECT_ERROR_HAS(e, "cannot open");
}

TEST(GgufBadInput, VersionsOtherThan2And3AreRefused) {
  Bytes v1;
  v1.header(0, 0, 1);
  EXPECT_ERROR_HAS(parse_error(v1.s), "GGUF version 1 is not supported");
  Bytes v4;
  v4.header(0, 0, 4);
  EXPECT_ERROR_HAS(parse_error(v4.s), "unknown GGUF version 4");
  Bytes be;
  be.header(0, 0, 0x03000000);
  EXPECT_ERROR_HAS(parse_error(be.s), "big-endian");
  Bytes v2;
  v2.header(0, 0, 2);
  EXPECT_EQ(parse_error(v2.s), "");
}

TEST(GgufBadInput, AbsurdCountsAreRefusedBeforeAllocating) {
  Bytes t;
  t.header(uint64_t(1) << 60, 0).zeros(100);
  std::string e = parse_error(t.s);
  EXPECT_ERROR_HAS(e, "byte 8: tensor count 1152921504606846976 is implausible");
  Bytes k;
  k.header(0, UINT64_MAX).zeros(100);
  e = parse_error(k.s);
  EXPECT_ERROR_HAS(e, "byte 16: metadata count 18446744073709551615 is implausible");
  Bytes a;  // array of 2^62 uint32
  a.header(0, 1).str("arr").u32(9).u32(4).u64(uint64_t(1) << 62).zeros(16);
  e = parse_error(a.s);
  EXPECT_ERROR_HAS(e, "metadata key 'arr'");
  EXPECT_ERROR_HAS(e, "array of uint32 length 4611686018427387904 is implausible");
  Bytes s;  // array of strings: each needs at least its 8-byte length
  s.header(0, 1).str("arr").u32(9).u32(8).u64(1000).zeros(100);
  EXPECT_ERROR_HAS(parse_error(s.s), "array of string length 1000 is implausible");
}

TEST(GgufBadInput, StringLengthPastEndOfFile) {
  Bytes k;
  k.header(0, 1).u64(1000).s.append("abc and some more bytes");
  std::string e = parse_error(k.s);
  EXPECT_ERROR_HAS(e, "byte 24");
  EXPECT_ERROR_HAS(e, "length 1000 runs past the end of the file");
  Bytes v;
  v.header(0, 1).str("name").u32(8).u64(UINT64_MAX);
  e = parse_error(v.s);
  EXPECT_ERROR_HAS(e, "metadata key 'name'");
  EXPECT_ERROR_HAS(e, "string value length 18446744073709551615 runs past the end");
  Bytes key;
  key.header(0, 1).str(std::string(70000, 'k')).u32(4).u32(0);
  EXPECT_ERROR_HAS(parse_error(key.s), "exceeds the limit of 65535 bytes");
  Bytes tn;
  tn.header(1, 0).tensor(std::string(65, 'n'), {4}, 0, 0).pad_to(32).zeros(16);
  EXPECT_ERROR_HAS(parse_error(tn.s), "name of tensor 0 length 65 exceeds the limit of 64 bytes");
}

TEST(GgufBadInput, UnknownValueTypes) {
  Bytes v;
  v.header(0, 1).str("k").u32(13).u32(0);
  std::string e = parse_error(v.s);
  EXPECT_ERROR_HAS(e, "byte 33: metadata key 'k': unknown value type 13");
  Bytes a;
  a.header(0, 1).str("k").u32(9).u32(77).u64(1).u32(0);
  e = parse_error(a.s);
  EXPECT_ERROR_HAS(e, "metadata key 'k': unknown array element type 77");
  Bytes b;
  b.header(0, 1).str("flag").u32(7).u8(2);
  EXPECT_ERROR_HAS(parse_error(b.s), "metadata key 'flag': bool value 2 is neither 0 nor 1");
}

TEST(GgufBadInput, DeepNestingIsBounded) {
  Bytes a;
  a.header(0, 1).str("deep").u32(9);
  for (int i = 0; i < 40; ++i) a.u32(9).u64(1);
  a.u32(4).u64(0);
  EXPECT_ERROR_HAS(parse_error(a.s), "arrays nested deeper than 16 levels");
  Bytes ok;  // 15 levels are fine
  ok.header(0, 1).str("deep").u32(9);
  for (int i = 0; i < 15; ++i) ok.u32(9).u64(1);
  ok.u32(4).u64(0);
  EXPECT_EQ(parse_error(ok.s), "");
}

TEST(GgufBadInput, DuplicateKeysAndTensorNames) {
  Bytes k;
  k.header(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2);
  EXPECT_ERROR_HAS(parse_error(k.s), "byte 43: metadata key 'a.b': duplicate key");
  Bytes t;
  t.header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad_to(32).zeros(64);
  EXPECT_ERROR_HAS(parse_error(t.s), "tensor 'w': duplicate tensor name");
  Bytes e;
  e.header(0, 1).str("").u32(4).u32(0);
  EXPECT_ERROR_HAS(parse_error(e.s), "metadata entry 0 has an empty key");
  Bytes en;
  en.header(1, 0).tensor("", {4}, 0, 0).pad_to(32).zeros(16);
  EXPECT_ERROR_HAS(parse_error(en.s), "tensor 0 has an empty name");
}

TEST(GgufBadInput, UnknownTensorTypes) {
  EXPECT_ERROR_HAS(parse_error(valid_one_tensor(0, 99).s), "tensor 't': unknown or removed ggml type id 99");
  // 4 and 5 were Q4_2 / Q4_3, long removed from ggml.
  EXPECT_ERROR_HAS(parse_error(valid_one_tensor(0, 4).s), "unknown or removed ggml type id 4");
}

TEST(GgufBadInput, MisalignedAndOutOfFileOffsets) {
  std::string e = parse_error(valid_one_tensor(8).s);
  EXPECT_ERROR_HAS(e, "tensor 't': data offset 8 is not a multiple of the alignment 32");
  EXPECT_ERROR_HAS(e, "byte 66");  // the offset field of the tensor info
  e = parse_error(valid_one_tensor(64).s);
  EXPECT_ERROR_HAS(e, "byte 66: tensor 't': F32 [4] needs bytes [64, 80) of the data section at 96, but the file ends at 160");
  e = parse_error(valid_one_tensor(UINT64_MAX - 31).s);
  EXPECT_ERROR_HAS(e, "the file ends at 160");
  // general.alignment changes what "aligned" means.
  Bytes a;
  a.header(1, 1).kv_u32("general.alignment", 16).tensor("t", {4}, 0, 16).pad_to(16).zeros(48);
  EXPECT_EQ(parse_error(a.s), "");
  Bytes bad;
  bad.header(0, 1).kv_u32("general.alignment", 24);
  EXPECT_ERROR_HAS(parse_error(bad.s), "'general.alignment' = 24 is not a non-zero power of two");
  Bytes zero;
  zero.header(0, 1).kv_u32("general.alignment", 0);
  EXPECT_ERROR_HAS(parse_error(zero.s), "'general.alignment' = 0 is not a non-zero power of two");
  Bytes typed;
  typed.header(0, 1).str("general.alignment").u32(10).u64(32);
  EXPECT_ERROR_HAS(parse_error(typed.s), "'general.alignment' must be uint32, found uint64");
}

TEST(GgufBadInput, OverlappingTensors) {
  Bytes b;
  b.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32).pad_to(32).zeros(128);
  std::string e = parse_error(b.s);
  EXPECT_ERROR_HAS(e, "tensors 'a'");
  EXPECT_ERROR_HAS(e, "and 'b'");
  EXPECT_ERROR_HAS(e, "overlap");
  Bytes same;  // two tensors at one offset
  same.header(2, 0).tensor("a", {4}, 0, 0).tensor("b", {4}, 0, 0).pad_to(32).zeros(64);
  EXPECT_ERROR_HAS(parse_error(same.s), "overlap");
  Bytes touching;  // end-to-start is fine
  touching.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {4}, 0, 32).pad_to(32).zeros(64);
  EXPECT_EQ(parse_error(touching.s), "");
}

TEST(GgufBadInput, DimsOverflowZeroAndTooMany) {
  Bytes o;
  o.header(1, 0).tensor("big", {uint64_t(1) << 32, uint64_t(1) << 32}, 0, 0).pad_to(32).zeros(32);
  std::string e = parse_error(o.s);
  EXPECT_ERROR_HAS(e, "tensor 'big': dimensions 4294967296, 4294967296 overflow");
  Bytes m;
  m.header(1, 0).tensor("max", {UINT64_MAX}, 0, 0).pad_to(32).zeros(32);
  EXPECT_ERROR_HAS(parse_error(m.s), "overflow");
  Bytes z;
  z.header(1, 0).tensor("z", {4, 0}, 0, 0).pad_to(32).zeros(32);
  EXPECT_ERROR_HAS(parse_error(z.s), "tensor 'z': dimension 1 is 0");
  Bytes five;
  five.header(1, 0).str("five").u32(5).zeros(64);
  EXPECT_ERROR_HAS(parse_error(five.s), "tensor 'five': n_dims 5 exceeds 4");
  // Bytes overflow although elements fit: 2^62 F64 elements are 2^65 bytes.
  Bytes bytes_over;
  bytes_over.header(1, 0).tensor("f64", {uint64_t(1) << 62}, 28, 0).pad_to(32).zeros(32);
  EXPECT_ERROR_HAS(parse_error(bytes_over.s), "tensor 'f64': F64 [4611686018427387904] takes more than 2^63-1 bytes");
}

TEST(GgufBadInput, SizeMustMatchTypeAndShape) {
  // Q8_0 rows are 32-element blocks: a row of 33 is not a whole number of blocks.
  std::string e = parse_error(valid_one_tensor(0, 8, 33).s);
  EXPECT_ERROR_HAS(e, "tensor 't': row length ne[0] = 33 is not a multiple of the Q8_0 block size 32");
  // Q4_K [256, 3] needs 3 * 144 bytes; the file holds 64.
  Bytes k;
  k.header(1, 0).tensor("q", {256, 3}, 12, 0).pad_to(32).zeros(64);
  e = parse_error(k.s);
  EXPECT_ERROR_HAS(e, "tensor 'q': Q4_K [256, 3] needs bytes [0, 432)");
  // Elements a multiple of the block size but not the row: [16, 2] of Q8_0 is 32 elements, still refused.
  Bytes r;
  r.header(1, 0).tensor("r", {16, 2}, 8, 0).pad_to(32).zeros(64);
  EXPECT_ERROR_HAS(parse_error(r.s), "row length ne[0] = 16 is not a multiple");
}

TEST(GgufBadInput, ErrorsNameTheFile) {
  test::TempDir d;
  test::write_file(d.file("model-q4.gguf"), valid_one_tensor(8).s);
  const std::string e = test::error_of([&] { GgufFile f(d.file("model-q4.gguf")); });
  EXPECT_ERROR_HAS(e, d.file("model-q4.gguf"));
  EXPECT_ERROR_HAS(e, "not a multiple of the alignment");
}
