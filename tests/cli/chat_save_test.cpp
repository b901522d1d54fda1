// chat's /save and /load: a conversation continues from a file.
#include <fstream>
#include <gtest/gtest.h>

#include "test_util.h"

using namespace moeflux;

namespace {

class ChatSave : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto r = test::run_cli("synth --preset tiny-moe -o " + dir_->file("m") + " --layers 2 --experts 4 --seed 5");
    ASSERT_EQ(r.code, 0) << r.err;
    r = test::run_cli("synth --preset tiny-moe -o " + dir_->file("other") + " --layers 2 --experts 4 --seed 6");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::TempDir* dir_;
};
test::TempDir* ChatSave::dir_ = nullptr;

std::vector<int> contexts(const std::string& err) {
  std::vector<int> out;
  for (size_t pos = 0; (pos = err.find("| context ", pos)) != std::string::npos; ++pos)
    out.push_back(std::stoi(err.substr(pos + 10)));
  return out;
}

TEST_F(ChatSave, ALoadedConversationContinuesWhereItWasSaved) {
  test::TempDir d;
  const std::string m = dir_->file("m"), saved = d.file("conv");
  test::write_file(d.file("in1"), "hello\n/save " + saved + "\n/exit\n");
  auto r1 = test::run_cli("chat " + m + " -n 6 --seed 2 < " + d.file("in1"));
  ASSERT_EQ(r1.code, 0) << r1.err;
  EXPECT_NE(r1.err.find("[saved 2 turns"), std::string::npos) << r1.err;
  // The same second turn, once in one run and once after /load.
  test::write_file(d.file("in2"), "hello\nsecond\n/exit\n");
  test::write_file(d.file("in3"), "/load " + saved + "\nsecond\n/exit\n");
  auto whole = test::run_cli("chat " + m + " -n 6 --seed 2 < " + d.file("in2"));
  auto resumed = test::run_cli("chat " + m + " -n 6 --seed 2 < " + d.file("in3"));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("[loaded 2 turns"), std::string::npos) << resumed.err;
  const auto cw = contexts(whole.err), cr = contexts(resumed.err);
  ASSERT_EQ(cw.size(), 2u) << whole.err;
  ASSERT_EQ(cr.size(), 1u) << resumed.err;
  EXPECT_EQ(cr[0], cw[1]);  // the second turn sees the whole first one
}

TEST_F(ChatSave, AFileOfAnotherModelOrNoSessionIsRefusedAndChatGoesOn) {
  test::TempDir d;
  test::write_file(d.file("in1"), "hi\n/save " + d.file("s") + "\n/exit\n");
  ASSERT_EQ(test::run_cli("chat " + dir_->file("other") + " -n 3 < " + d.file("in1")).code, 0);
  test::write_file(d.file("junk"), "junk");
  test::write_file(d.file("in2"), "/load " + d.file("s") + "\n/load " + d.file("junk") + "\nhello\n/exit\n");
  auto r = test::run_cli("chat " + dir_->file("m") + " -n 3 < " + d.file("in2"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("saved from another model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not a moeflux session file"), std::string::npos) << r.err;
  EXPECT_EQ(contexts(r.err).size(), 1u) << r.err;  // and it still answered
}

TEST_F(ChatSave, SaveRefusesToReplaceAUsersFileAndChatGoesOn) {
  test::TempDir d;
  test::write_file(d.file("notes.txt"), "keep me");
  test::write_file(d.file("in"), "hi\n/save " + d.file("notes.txt") + "\nagain\n/exit\n");
  auto r = test::run_cli("chat " + dir_->file("m") + " -n 3 < " + d.file("in"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("not a moeflux session file; not replacing it"), std::string::npos) << r.err;
  EXPECT_EQ(contexts(r.err).size(), 2u) << r.err;  // both turns answered
  std::ifstream in(d.file("notes.txt"));
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "keep me");
}

}  // namespace
