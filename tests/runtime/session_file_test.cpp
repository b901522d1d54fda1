// Saved sessions: Session::save / load round trips and the files they refuse.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "model/model_spec.h"
#include "moeflux/engine.h"
#include "test_util.h"

using namespace moeflux;

namespace {

const std::string kModel = test::fixture("oracle/qwen3_moe_bf16");
const std::string kOther = test::fixture("oracle/olmoe_bf16");

std::vector<int32_t> prompt(int n, int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(int32_t((i * 37 + 5) % vocab));
  return ids;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_all(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), std::streamsize(data.size()));
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class SessionFile : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.threads = 2;
    engine_ = Engine::load(kModel, o);
  }
  std::shared_ptr<Engine> engine_;
  test::TempDir dir_;
};

TEST_F(SessionFile, LoadedSessionContinuesWithTheSameLogits) {
  const int vocab = engine_->spec().vocab;
  Session a(engine_);
  a.step(prompt(11, vocab));
  a.save(dir_.file("s"), "user data \x01\x02");
  Session b(engine_);
  b.step(prompt(3, vocab));  // state to be replaced
  EXPECT_EQ(b.load(dir_.file("s")), "user data \x01\x02");
  EXPECT_EQ(b.position(), 11);
  const int32_t next = 7;
  auto la = a.step(std::span<const int32_t>(&next, 1));
  std::vector<float> want(la.begin(), la.end());
  auto lb = b.step(std::span<const int32_t>(&next, 1));
  ASSERT_EQ(lb.size(), want.size());
  EXPECT_EQ(std::memcmp(lb.data(), want.data(), want.size() * sizeof(float)), 0);
}

TEST_F(SessionFile, SavingAgainReplacesTheFileAtomically) {
  const int vocab = engine_->spec().vocab;
  Session a(engine_);
  a.step(prompt(4, vocab));
  a.save(dir_.file("s"));
  a.step(prompt(2, vocab));
  a.save(dir_.file("s"));
  Session b(engine_);
  b.load(dir_.file("s"));
  EXPECT_EQ(b.position(), 6);
  // No temporary is left beside it.
  int files = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir_.path())) ++files;
  EXPECT_EQ(files, 1);
}

TEST_F(SessionFile, SavingNeverReplacesAFileThatIsNotASession) {
  const int vocab = engine_->spec().vocab;
  Session a(engine_);
  a.step(prompt(4, vocab));
  // A user's own file typed as the target: refused, bytes unchanged.
  write_all(dir_.file("notes.txt"), "my notes");
  EXPECT_NE(error_of([&] { a.save(dir_.file("notes.txt")); }).find("not a moeflux session file"),
            std::string::npos);
  EXPECT_EQ(read_all(dir_.file("notes.txt")), "my notes");
  // A short file (shorter than the magic) too.
  write_all(dir_.file("short"), "MOE");
  EXPECT_FALSE(error_of([&] { a.save(dir_.file("short")); }).empty());
  EXPECT_EQ(read_all(dir_.file("short")), "MOE");
  // A symbolic link to a session file: the link stays a link, its target unchanged.
  a.save(dir_.file("real"));
  const std::string real = read_all(dir_.file("real"));
  std::filesystem::create_symlink(dir_.file("real"), dir_.file("link"));
  a.step(prompt(2, vocab));
  EXPECT_FALSE(error_of([&] { a.save(dir_.file("link")); }).empty());
  EXPECT_TRUE(std::filesystem::is_symlink(dir_.file("link")));
  EXPECT_EQ(read_all(dir_.file("real")), real);
  // A directory under the name is left alone.
  std::filesystem::create_directory(dir_.file("dir"));
  EXPECT_FALSE(error_of([&] { a.save(dir_.file("dir")); }).empty());
  EXPECT_TRUE(std::filesystem::is_directory(dir_.file("dir")));
}

TEST_F(SessionFile, AFileOfAnotherModelIsRefused) {
  auto other = Engine::load(kOther, EngineOptions{.threads = 2});
  Session a(other);
  a.step(prompt(5, other->spec().vocab));
  a.save(dir_.file("other"));
  Session b(engine_);
  b.step(prompt(3, engine_->spec().vocab));
  const std::string err = error_of([&] { b.load(dir_.file("other")); });
  EXPECT_NE(err.find("another model"), std::string::npos) << err;
  EXPECT_EQ(b.position(), 3);  // left as it was
  EXPECT_NE(engine_->fingerprint(), other->fingerprint());
}

TEST_F(SessionFile, CorruptTruncatedForeignAndNewerFilesAreRefused) {
  const int vocab = engine_->spec().vocab;
  Session a(engine_);
  a.step(prompt(9, vocab));
  a.save(dir_.file("good"));
  const std::string good = read_all(dir_.file("good"));
  Session b(engine_);
  auto refused = [&](const std::string& data, const std::string& why) {
    write_all(dir_.file("bad"), data);
    const std::string err = error_of([&] { b.load(dir_.file("bad")); });
    EXPECT_NE(err.find(why), std::string::npos) << "want '" << why << "', got: " << err;
    EXPECT_EQ(b.position(), 0);
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x40;
  refused(flipped, "corrupt");
  refused(good.substr(0, good.size() - 100), "corrupt");
  refused(good.substr(0, 10), "not a moeflux session file");
  refused("hello, world, this is not a session", "not a moeflux session file");
  std::string newer = good;
  newer[8] = 2;  // the version field
  refused(newer, "version 2");
  EXPECT_NE(error_of([&] { b.load(dir_.file("missing")); }).find("cannot open"), std::string::npos);
  b.load(dir_.file("good"));
  EXPECT_EQ(b.position(), 9);
}

TEST_F(SessionFile, ALoadBeyondTheStateBudgetIsACapacityErrorAndChangesNothing) {
  const int vocab = engine_->spec().vocab;
  Session a(engine_);
  a.step(prompt(100, vocab));  // two KV pages of 64 positions
  a.save(dir_.file("s"));
  EngineOptions o;
  o.threads = 2;
  o.state_budget = a.state_bytes() / 2;  // one page
  auto small = Engine::load(kModel, o);
  Session b(small);
  b.step(prompt(5, vocab));
  try {
    b.load(dir_.file("s"));
    FAIL() << "loaded beyond the budget";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Capacity) << e.what();
  }
  EXPECT_EQ(b.position(), 5);
}

TEST_F(SessionFile, CheckpointsTakenBeforeALoadAreVoid) {
  const int vocab = engine_->spec().vocab;
  Session a(engine_);
  a.step(prompt(6, vocab));
  a.save(dir_.file("s"));
  Session b(engine_);
  b.step(prompt(8, vocab));
  const SessionCheckpoint cp = b.checkpoint();
  b.load(dir_.file("s"));
  EXPECT_FALSE(b.can_restore(cp));
}

}  // namespace
