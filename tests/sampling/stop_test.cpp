// StopChecker tests: exact emitted text per step for hand-made streams, and a
// randomised comparison against the obvious whole-text reference.
#include "sampling/stop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "moeflux/error.h"

using namespace moeflux;
using ::testing::HasSubstr;

namespace {

// Loose structural UTF-8 check for emitted chunks: no chunk may start with a
// continuation byte or end inside a character.
bool chunk_is_whole_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t j = 1; j < len; ++j)
      if ((static_cast<unsigned char>(s[i + j]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

struct Streamed {
  std::vector<std::string> emits;  // per push
  std::string text;                // all emitted, including finish() when not stopped
  bool stop = false;
  std::string reason;
  int pushes = 0;
};

// Pushes pieces (token ids 100, 101, ...) until a stop, then calls finish().
Streamed stream(StopConditions c, const std::vector<std::string>& pieces, std::vector<int32_t> tokens = {}) {
  StopChecker sc(std::move(c));
  Streamed r;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const int32_t tok = i < tokens.size() ? tokens[i] : int32_t(100 + i);
    StopChecker::Step st = sc.push(tok, pieces[i]);
    ++r.pushes;
    EXPECT_TRUE(chunk_is_whole_utf8(st.emit)) << "piece " << i;
    r.emits.push_back(st.emit);
    r.text += st.emit;
    if (st.stop) {
      r.stop = true;
      r.reason = st.reason;
      EXPECT_TRUE(sc.stopped());
      EXPECT_EQ(sc.finish(), "");
      return r;
    }
    EXPECT_TRUE(st.reason.empty());
  }
  r.text += sc.finish();
  return r;
}

StopConditions stops(std::vector<std::string> s) {
  StopConditions c;
  c.stop_strings = std::move(s);
  return c;
}

using Emits = std::vector<std::string>;

}  // namespace

TEST(StopChecker, NoConditionsPassesEverythingThrough) {
  Streamed r = stream({}, {"Hello", ", ", "", "world"});
  EXPECT_EQ(r.emits, (Emits{"Hello", ", ", "", "world"}));
  EXPECT_FALSE(r.stop);
}

TEST(StopChecker, StopStringSplitAcrossPieces) {
  Streamed r = stream(stops({"</end>"}), {"Hello <", "/e", "nd", ">more", "never"});
  EXPECT_EQ(r.emits, (Emits{"Hello ", "", "", ""}));
  EXPECT_TRUE(r.stop);
  EXPECT_EQ(r.reason, "stop_string");
  EXPECT_EQ(r.pushes, 4);
  EXPECT_EQ(r.text, "Hello ");
}

TEST(StopChecker, TextBeforeStopStringInSamePieceIsEmitted) {
  Streamed r = stream(stops({"STOP"}), {"abc", "deSTOPfg"});
  EXPECT_EQ(r.emits, (Emits{"abc", "de"}));
  EXPECT_EQ(r.reason, "stop_string");
}

TEST(StopChecker, FalseStartIsReleased) {
  Streamed r = stream(stops({"abc"}), {"xab", "d", "a", "bx"});
  EXPECT_EQ(r.emits, (Emits{"x", "abd", "", "abx"}));
  EXPECT_FALSE(r.stop);
}

TEST(StopChecker, OverlappingPrefixes) {
  // "ababc": the first "ab" turns out not to start the match, the second does.
  Streamed r = stream(stops({"abc"}), {"a", "b", "a", "b", "c"});
  EXPECT_EQ(r.emits, (Emits{"", "", "ab", "", ""}));
  EXPECT_EQ(r.text, "ab");
  EXPECT_EQ(r.reason, "stop_string");

  EXPECT_EQ(stream(stops({"abc"}), {"ababc"}).emits, (Emits{"ab"}));
  // Self-overlapping stop string: "aab" in "aaab".
  Streamed r2 = stream(stops({"aab"}), {"a", "a", "a", "b"});
  EXPECT_EQ(r2.emits, (Emits{"", "", "a", ""}));
  EXPECT_TRUE(r2.stop);
  // Only the longest suffix that can still grow into the stop string is held:
  // in "aaa" that is "aa", so the first 'a' is released at once.
  Streamed r3 = stream(stops({"aab"}), {"aaa", "c"});
  EXPECT_EQ(r3.emits, (Emits{"a", "aac"}));
}

TEST(StopChecker, MultipleStopStringsEarliestWins) {
  Streamed r = stream(stops({"world", "lo w"}), {"hello world"});
  EXPECT_EQ(r.emits, (Emits{"hel"}));
  // One stop string a prefix of another: the shorter one completes first.
  Streamed r2 = stream(stops({"abc", "ab"}), {"x", "a", "bc"});
  EXPECT_EQ(r2.text, "x");
  EXPECT_TRUE(r2.stop);
  // Hold-back considers every stop string: "xy" could start "xyz", "ab" "abc".
  Streamed r3 = stream(stops({"xyz", "abc"}), {"1xy", "2ab", "3"});
  EXPECT_EQ(r3.emits, (Emits{"1", "xy2", "ab3"}));
  Streamed r4 = stream(stops({"xyz", "abc"}), {"1xy", "zab"});
  EXPECT_EQ(r4.emits, (Emits{"1", ""}));
  EXPECT_EQ(r4.reason, "stop_string");
}

TEST(StopChecker, MultiByteUtf8) {
  // Japanese stop string split between pieces at character boundaries.
  Streamed r = stream(stops({"終わり"}), {"こんにちは終", "わ", "り です"});
  EXPECT_EQ(r.emits, (Emits{"こんにちは", "", ""}));
  EXPECT_EQ(r.reason, "stop_string");

  // "é" is held as the start of "éa", then released whole.
  Streamed r2 = stream(stops({"éa"}), {"xé", "b"});
  EXPECT_EQ(r2.emits, (Emits{"x", "éb"}));

  // "ç" (C3 A7) shares its lead byte with "é" (C3 A9): it must not be held
  // or split, since no suffix of "ç" is a prefix of "é".
  Streamed r3 = stream(stops({"é"}), {"ç", "aç"});
  EXPECT_EQ(r3.emits, (Emits{"ç", "aç"}));

  // Emoji (4 bytes) and a ZWJ sequence as stop string.
  Streamed r4 = stream(stops({"👩‍💻"}), {"code 👩", "‍", "💻 done"});
  EXPECT_EQ(r4.text, "code ");
  EXPECT_EQ(r4.reason, "stop_string");
}

TEST(StopChecker, StopTokenIsNotEmittedButReleasesHeldText) {
  StopConditions c = stops({"abc"});
  c.stop_tokens = {2, 151645};
  Streamed r = stream(c, {"xa", "<|im_end|>", "never"}, {7, 151645, 8});
  EXPECT_EQ(r.emits, (Emits{"x", "a"}));
  EXPECT_EQ(r.reason, "stop_token");
  EXPECT_EQ(r.pushes, 2);
}

TEST(StopChecker, MaxTokensCountsPushes) {
  StopConditions c;
  c.max_tokens = 3;
  Streamed r = stream(c, {"a", "", "c", "d"});
  EXPECT_EQ(r.emits, (Emits{"a", "", "c"}));
  EXPECT_EQ(r.reason, "max_tokens");
  EXPECT_EQ(r.pushes, 3);

  c.max_tokens = 1;
  EXPECT_EQ(stream(c, {"only", "x"}).emits, (Emits{"only"}));

  // Held text is released when the limit ends generation.
  StopConditions h = stops({"abc"});
  h.max_tokens = 2;
  Streamed rh = stream(h, {"x", "ab"});
  EXPECT_EQ(rh.emits, (Emits{"x", "ab"}));
  EXPECT_EQ(rh.reason, "max_tokens");
}

TEST(StopChecker, PrecedenceOnTheLastToken) {
  StopConditions c = stops({"END"});
  c.stop_tokens = {0};
  c.max_tokens = 2;
  EXPECT_EQ(stream(c, {"a", "b"}, {5, 0}).reason, "stop_token");
  Streamed r = stream(c, {"a", "bEND"}, {5, 6});
  EXPECT_EQ(r.reason, "stop_string");
  EXPECT_EQ(r.text, "ab");
  EXPECT_EQ(stream(c, {"a", "b"}, {5, 6}).reason, "max_tokens");
}

TEST(StopChecker, FinishFlushesHeldText) {
  StopChecker sc(stops({"abc"}));
  StopChecker::Step s = sc.push(1, "hello ab");
  EXPECT_EQ(s.emit, "hello ");
  EXPECT_FALSE(s.stop);
  EXPECT_EQ(sc.finish(), "ab");
  EXPECT_EQ(sc.finish(), "");
  EXPECT_EQ(sc.tokens(), 1);
}

TEST(StopChecker, PushAfterStopThrows) {
  StopConditions c;
  c.stop_tokens = {1};
  StopChecker sc(c);
  EXPECT_TRUE(sc.push(1, "").stop);
  EXPECT_THROW(sc.push(2, "x"), Error);
}

TEST(StopChecker, RejectsBadConditions) {
  auto message = [](StopConditions c) -> std::string {
    try {
      StopChecker sc(std::move(c));
    } catch (const Error& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_THAT(message(stops({"ok", ""})), HasSubstr("stop_strings[1]"));
  EXPECT_THAT(message(stops({std::string("a\xC3", 2)})), HasSubstr("UTF-8"));
  EXPECT_THAT(message(stops({std::string("\xED\xA0\x80")})), HasSubstr("UTF-8"));  // surrogate
  EXPECT_THAT(message(stops({std::string("\xC0\xAF")})), HasSubstr("UTF-8"));      // overlong
  StopConditions c;
  c.max_tokens = 0;
  EXPECT_THAT(message(c), HasSubstr("max_tokens"));
  c.max_tokens = -2;
  EXPECT_THAT(message(c), HasSubstr("max_tokens"));
  c.max_tokens = -1;
  EXPECT_EQ(message(c), "accepted");
}

// Random text over a small alphabet, so stop strings and near misses are
// frequent, split at random points; compared with the whole-text answer.
TEST(StopChecker, RandomStreamsMatchWholeTextReference) {
  std::mt19937 gen(2024);
  const std::vector<std::vector<std::string>> stop_sets = {
      {"abc"}, {"aab", "ba"}, {"abab"}, {"cab", "abca", "bb"}, {"aaaa"}, {"c"}};
  for (int iter = 0; iter < 3000; ++iter) {
    const auto& ss = stop_sets[size_t(iter) % stop_sets.size()];
    std::string text;
    const int len = int(gen() % 30);
    for (int i = 0; i < len; ++i) text += "abc"[gen() % 3];
    size_t max_stop = 0;
    size_t first = std::string::npos;
    for (const auto& s : ss) {
      first = std::min(first, text.find(s));
      max_stop = std::max(max_stop, s.size());
    }
    const std::string want = first == std::string::npos ? text : text.substr(0, first);

    StopChecker sc(stops(ss));
    std::string got, pushed;
    bool stopped = false;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t n = std::min<size_t>(text.size() - pos, gen() % 5);  // pieces may be empty
      pushed += text.substr(pos, n);
      StopChecker::Step st = sc.push(1, text.substr(pos, n));
      pos += n;
      got += st.emit;
      if (st.stop) {
        stopped = true;
        break;
      }
      // Held back: never more than one stop string minus one byte.
      ASSERT_LE(pushed.size() - got.size(), max_stop - 1) << text;
    }
    if (!stopped) got += sc.finish();
    ASSERT_EQ(got, want) << "text " << text << " stop " << ss[0];
    ASSERT_EQ(stopped, first != std::string::npos) << text;
  }
}
