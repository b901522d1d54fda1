// Each normalizer, pre-tokenizer and decoder on small inputs. Expected
// values were produced with HF `tokenizers` 0.22.2 (the pinned version),
// e.g. pre_tokenizers.Split("-", "merged_with_next").pre_tokenize_str(...).
#include <gtest/gtest.h>

#include "core/error.h"
#include "text/tokenizer/decoder.h"
#include "text/tokenizer/json_reader.h"
#include "text/tokenizer/normalizer.h"
#include "text/tokenizer/pre_tokenizer.h"
#include "text/tokenizer/regex.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {
namespace {

using Strings = std::vector<std::string>;

json::Value parse(const std::string& s) { return json::Value::root(json::Document::parse(s, "test.json")); }

Strings pre(const std::string& spec, const std::string& text) {
  auto t = make_pre_tokenizer(parse(spec));
  Pieces p;
  p.reset(text, true);
  t->apply(p);
  p.materialize_byte_level();
  Strings out;
  for (const auto& s : p.spans) out.emplace_back(p.view(s));
  return out;
}

std::string norm(const std::string& spec, std::string text) {
  make_normalizer(parse(spec))->normalize(text);
  return text;
}

std::string dec(const std::string& spec, Strings tokens) { return run_decoder(*make_decoder(parse(spec)), tokens); }

std::string split_spec(const std::string& behavior, bool invert) {
  return R"({"type":"Split","pattern":{"String":"-"},"behavior":")" + behavior + R"(","invert":)" +
         (invert ? "true" : "false") + "}";
}

TEST(PreTokenizer, SplitBehaviors) {
  const std::string s = "a-b--c-";
  EXPECT_EQ(pre(split_spec("Removed", false), s), (Strings{"a", "b", "c"}));
  EXPECT_EQ(pre(split_spec("Removed", true), s), (Strings{"-", "-", "-", "-"}));
  EXPECT_EQ(pre(split_spec("Isolated", false), s), (Strings{"a", "-", "b", "-", "-", "c", "-"}));
  EXPECT_EQ(pre(split_spec("MergedWithPrevious", false), s), (Strings{"a-", "b-", "-", "c-"}));
  EXPECT_EQ(pre(split_spec("MergedWithPrevious", true), s), (Strings{"a", "-b", "-", "-c", "-"}));
  EXPECT_EQ(pre(split_spec("MergedWithNext", false), s), (Strings{"a", "-b", "-", "-c", "-"}));
  EXPECT_EQ(pre(split_spec("MergedWithNext", true), s), (Strings{"a-", "b-", "-", "c-"}));
  EXPECT_EQ(pre(split_spec("Contiguous", false), s), (Strings{"a", "-", "b", "--", "c", "-"}));
}

TEST(PreTokenizer, SplitRegexUnicode) {
  // Qwen3's regex: U+180E is not \s for Oniguruma (HF), unlike PCRE2's own \s.
  const std::string spec =
      R"({"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false})";
  EXPECT_EQ(pre(spec, "a\u180e\u180eb"), (Strings{"a", "\u180e\u180e", "b"}));
  EXPECT_EQ(pre(spec, "a\u00a0\u00a0b"), (Strings{"a", "\u00a0", "\u00a0b"}));
  EXPECT_EQ(pre(spec, "I'M 12  x\n\n"), (Strings{"I", "'M", " ", "1", "2", " ", " x", "\n\n"}));
}

TEST(PreTokenizer, Digits) {
  EXPECT_EQ(pre(R"({"type":"Digits","individual_digits":true})", "ab123c4"), (Strings{"ab", "1", "2", "3", "c", "4"}));
  EXPECT_EQ(pre(R"({"type":"Digits","individual_digits":false})", "ab123c4"), (Strings{"ab", "123", "c", "4"}));
}

TEST(PreTokenizer, Metaspace) {
  auto spec = [](const char* scheme, bool split) {
    return std::string(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":")") + scheme + R"(","split":)" +
           (split ? "true" : "false") + "}";
  };
  EXPECT_EQ(pre(spec("always", true), "Hey  friend "), (Strings{"▁Hey", "▁", "▁friend", "▁"}));
  EXPECT_EQ(pre(spec("first", true), "Hey  friend "), (Strings{"▁Hey", "▁", "▁friend", "▁"}));
  EXPECT_EQ(pre(spec("never", true), "Hey  friend "), (Strings{"Hey", "▁", "▁friend", "▁"}));
  EXPECT_EQ(pre(spec("always", false), "Hey  friend"), (Strings{"▁Hey▁▁friend"}));
  EXPECT_EQ(pre(spec("never", false), "Hey  friend"), (Strings{"Hey▁▁friend"}));
  // "first" prepends only to a piece that starts the input.
  auto t = make_pre_tokenizer(parse(spec("first", false)));
  Pieces p;
  p.reset("later", false);
  t->apply(p);
  EXPECT_EQ(p.view(p.spans[0]), "later");
}

TEST(PreTokenizer, ByteLevelAndWhitespace) {
  EXPECT_EQ(pre(R"({"type":"ByteLevel","add_prefix_space":true,"use_regex":true})", "Hello world's 123  x"),
            (Strings{"ĠHello", "Ġworld", "'s", "Ġ123", "Ġ", "Ġx"}));
  EXPECT_EQ(pre(R"({"type":"WhitespaceSplit"})", " a b\t\nc "), (Strings{"a", "b", "c"}));
  EXPECT_EQ(pre(R"({"type":"Whitespace"})", "Hello, wor_ld! é x"), (Strings{"Hello", ",", "wor_ld", "!", "é", "x"}));
  EXPECT_EQ(pre(R"({"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Digits","individual_digits":true}]})",
                "a12 b"),
            (Strings{"a", "1", "2", "b"}));
}

TEST(Normalizer, All) {
  EXPECT_EQ(norm(R"({"type":"NFC"})", "e\u0301a"), "\u00e9a");
  EXPECT_EQ(norm(R"({"type":"NFC"})", "x\u00e9 \u4e2d\u6587 abc"), "x\u00e9 \u4e2d\u6587 abc");
  EXPECT_EQ(norm(R"({"type":"NFC"})", std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(norm(R"({"type":"NFKC"})", "\ufb01"), "fi");
  EXPECT_EQ(norm(R"({"type":"NFD"})", "\u00e9"), "e\u0301");
  EXPECT_EQ(norm(R"({"type":"Prepend","prepend":"▁"})", ""), "");
  EXPECT_EQ(norm(R"({"type":"Prepend","prepend":"▁"})", "ab"), "▁ab");
  EXPECT_EQ(norm(R"({"type":"Replace","pattern":{"String":" "},"content":"▁"})", " a  b "), "▁a▁▁b▁");
  EXPECT_EQ(norm(R"({"type":"Replace","pattern":{"Regex":"\\d+"},"content":"#"})", "a12b3"), "a#b#");
  EXPECT_EQ(norm(R"({"type":"Strip","strip_left":true,"strip_right":true})", " \u3000a b\n"), "a b");
  EXPECT_EQ(norm(R"({"type":"Strip","strip_left":false,"strip_right":true})", "  a  "), "  a");
  EXPECT_EQ(norm(R"({"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]})",
                 "a b"),
            "▁a▁b");
}

TEST(Decoder, All) {
  EXPECT_EQ(dec(R"({"type":"ByteFallback"})", {"<0xE2>", "<0x82>", "a", "<0xE2>", "<0x82>", "<0xAC>", "<0xFF>"}),
            "\ufffd\ufffda\ufffd\ufffd\ufffd\ufffd");
  EXPECT_EQ(dec(R"({"type":"ByteFallback"})", {"<0xE2>", "<0x82>", "<0xAC>"}), "\u20ac");
  EXPECT_EQ(dec(R"({"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})",
                {"▁Hi", "▁", "▁there"}),
            "Hi  there");
  EXPECT_EQ(dec(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always"})", {"▁Hey", "▁▁friend"}), "Hey  friend");
  EXPECT_EQ(dec(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"never"})", {"▁Hey", "▁friend"}), " Hey friend");
  EXPECT_EQ(dec(R"({"type":"Strip","content":"x","start":2,"stop":1})", {"xxxaxx", "b"}), "xaxb");
  EXPECT_EQ(dec(R"({"type":"ByteLevel"})", {"Hello", "Ġwor", "ld", "<｜User｜>", "âĤ"}), "Hello world<｜User｜>\ufffd");
}

TEST(Utf8, LossyMatchesPython) {
  // Python: bytes.decode("utf-8", "replace")
  EXPECT_EQ(utf8::to_valid_lossy("\xed\xa0\x80"), "\ufffd\ufffd\ufffd");
  EXPECT_EQ(utf8::to_valid_lossy("\xe2\x82"), "\ufffd");
  EXPECT_EQ(utf8::to_valid_lossy("\xf0\x9f\x98" "a"), "\ufffd" "a");
  EXPECT_EQ(utf8::to_valid_lossy("\xc0\xaf"), "\ufffd\ufffd");
  EXPECT_EQ(utf8::to_valid_lossy("\xf4\x90\x80\x80"), "\ufffd\ufffd\ufffd\ufffd");
  EXPECT_EQ(utf8::to_valid_lossy("ok \xe2\x82\xac"), "ok \u20ac");
  EXPECT_EQ(utf8::incomplete_tail("a\xe2\x82"), 2u);
  EXPECT_EQ(utf8::incomplete_tail("a\xf0"), 1u);
  EXPECT_EQ(utf8::incomplete_tail("a\xe2\x82\xac"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("a\x80"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("\xed\xa0"), 0u);  // would be a surrogate: never valid
  for (int b = 0; b < 256; ++b) {
    std::string mapped, back;
    utf8::bytes_to_chars(std::string(1, char(b)), mapped);
    ASSERT_TRUE(utf8::chars_to_bytes(mapped, back));
    EXPECT_EQ(back, std::string(1, char(b)));
  }
  EXPECT_EQ(utf8::char_to_byte(U'\u0120'), 0x20);  // 'Ġ' is the space
}

TEST(Regex, OnigCompat) {
  EXPECT_EQ(Regex::translate(R"(\s+(?!\S))"),
            R"([\t\n\x0b\f\r\x20\x85\p{Zs}\p{Zl}\p{Zp}]+(?![^\t\n\x0b\f\r\x20\x85\p{Zs}\p{Zl}\p{Zp}]))");
  EXPECT_EQ(Regex::translate(R"([^\s\p{L}])"), R"([^\t\n\x0b\f\r\x20\x85\p{Zs}\p{Zl}\p{Zp}\p{L}])");
  EXPECT_EQ(Regex::translate(R"(\u4e00\\s)"), R"(\x{4e00}\\s)");
  Regex re("x*");
  std::vector<std::pair<uint32_t, uint32_t>> m;
  re.find_all("axxb", m);  // Oniguruma find_iter: empty, "xx", empty at b, empty at end
  EXPECT_EQ(m, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 0}, {1, 3}, {3, 3}, {4, 4}}));
  try {
    Regex bad("(unclosed");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unclosed"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moeflux
