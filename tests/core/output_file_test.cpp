// OutputFile never deletes or replaces what it was not asked to: a user's
// temporary-looking files, links, devices and existing files survive.
#include "core/output_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "moeflux/error.h"
#include "test_util.h"

namespace moeflux {
namespace {

namespace fs = std::filesystem;

size_t entries(const std::string& dir) {
  return size_t(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(OutputFile, PublishesOnlyOnCommit) {
  test::TempDir d;
  const std::string p = d.file("out.bin");
  {
    OutputFile f(p, Replace::No);
    f.write(std::string_view("hello"));
    EXPECT_FALSE(fs::exists(p));
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_EQ(fs::path(f.temp_path()).parent_path(), fs::path(p).parent_path());
    f.commit();
  }
  EXPECT_EQ(test::read_file(p), "hello");
  EXPECT_EQ(entries(d.path()), 1u);  // no temporary left behind
}

TEST(OutputFile, AnAbandonedWriteLeavesNothing) {
  test::TempDir d;
  {
    OutputFile f(d.file("out.bin"), Replace::No);
    f.write(std::string_view("half"));
  }
  EXPECT_EQ(entries(d.path()), 0u);
}

TEST(OutputFile, AUsersPartialFileIsNeverTouched) {
  // The writers used to write `out.gguf.partial` and rename it away.
  test::TempDir d;
  test::write_file(d.file("out.gguf.partial"), "the user's own file");
  write_output_file(d.file("out.gguf"), "model", Replace::No);
  EXPECT_EQ(test::read_file(d.file("out.gguf.partial")), "the user's own file");
  EXPECT_EQ(test::read_file(d.file("out.gguf")), "model");
}

TEST(OutputFile, AnExistingFileIsReplacedOnlyWhenAllowed) {
  test::TempDir d;
  test::write_file(d.file("x"), "keep");
  const std::string e = test::error_of([&] { write_output_file(d.file("x"), "new", Replace::No); });
  EXPECT_NE(e.find("already exists (pass --force"), std::string::npos) << e;
  EXPECT_EQ(test::read_file(d.file("x")), "keep");
  write_output_file(d.file("x"), "new", Replace::Yes);
  EXPECT_EQ(test::read_file(d.file("x")), "new");
  EXPECT_EQ(entries(d.path()), 1u);
}

TEST(OutputFile, ALinkIsNeverReplacedEvenWithForce) {
  test::TempDir d;
  test::write_file(d.file("target"), "data");
  fs::create_symlink(d.file("target"), d.file("link"));
  fs::create_symlink(d.file("nowhere"), d.file("dangling"));
  for (Replace r : {Replace::No, Replace::Yes}) {
    for (const char* name : {"link", "dangling"}) {
      const std::string e = test::error_of([&] { write_output_file(d.file(name), "new", r); });
      EXPECT_NE(e.find("is a symbolic link"), std::string::npos) << e;
      EXPECT_TRUE(fs::is_symlink(d.file(name)));
    }
  }
  EXPECT_EQ(test::read_file(d.file("target")), "data");
  EXPECT_FALSE(fs::exists(d.file("nowhere")));
}

TEST(OutputFile, DevicesAndDirectoriesAreRefused) {
  // As root, `score --logits-out /dev/full` used to turn the device node into a file.
  for (const char* dev : {"/dev/null", "/dev/full"}) {
    if (!fs::exists(dev)) continue;
    const std::string e = test::error_of([&] { write_output_file(dev, "x", Replace::Yes); });
    EXPECT_NE(e.find("not a regular file"), std::string::npos) << e;
    EXPECT_TRUE(fs::is_character_file(dev));
  }
  test::TempDir d;
  fs::create_directory(d.file("sub"));
  const std::string e = test::error_of([&] { write_output_file(d.file("sub"), "x", Replace::Yes); });
  EXPECT_NE(e.find("is a directory"), std::string::npos) << e;
  const std::string m = test::error_of([&] { write_output_file(d.file("missing/x"), "x", Replace::No); });
  EXPECT_NE(m.find("does not exist"), std::string::npos) << m;
}

TEST(OutputFile, ATargetThatAppearsDuringTheWriteIsNotReplaced) {
  test::TempDir d;
  OutputFile f(d.file("x"), Replace::No);
  f.write(std::string_view("ours"));
  test::write_file(d.file("x"), "theirs");
  const std::string e = test::error_of([&] { f.commit(); });
  EXPECT_NE(e.find("already exists"), std::string::npos) << e;
  EXPECT_EQ(test::read_file(d.file("x")), "theirs");
}

TEST(OutputFile, TheModeFollowsTheUmask) {
  test::TempDir d;
  const mode_t old = ::umask(022);
  write_output_file(d.file("x"), "x", Replace::No);
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(d.file("x").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

}  // namespace
}  // namespace moeflux
