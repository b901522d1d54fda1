// A weights file that changes under a running engine (truncated, or
// rewritten in place with other bytes of the same size) gives an Error
// saying that the file changed since it was opened, naming it, on the next
// step at the latest, in every expert mode and format, and never a signal.
// Before the fix, truncation killed the process with SIGBUS (the dense
// weights and the resident experts were read through MAP_SHARED maps) and a
// rewrite in place without --expert-ram went unnoticed. Every scenario runs
// in a child process (death-test machinery) so that a signal shows up as a
// failure of that scenario instead of ending the test binary.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/mapped_file.h"
#include "experts/expert_store.h"
#include "model/synth.h"
#include "moeflux/engine.h"
#include "runtime/engine_impl.h"
#include "test_util.h"

using namespace moeflux;
namespace fs = std::filesystem;

namespace {

enum class Damage { Truncate, Rewrite };

struct Mode {
  const char* name;
  bool store;      // --expert-ram (room for every expert), else every expert memory-mapped
  const char* io;  // with the store
};

const Mode kModes[] = {{"resident", false, "direct"},
                       {"store-direct", true, "direct"},
                       {"store-pread", true, "pread"},
                       {"store-buffered", true, "buffered"},
                       {"store-mmap", true, "mmap"}};

SynthOptions tiny(const std::string& out) {
  SynthOptions o;
  o.preset = "tiny-moe";
  o.out_dir = out;
  o.layers = 2;
  o.experts = 4;
  o.seed = 11;
  o.progress = false;
  return o;
}

// One safetensors directory and one GGUF file, made once per process (the
// death-test children make their own).
test::TempDir* g_models = nullptr;

class ChangedFile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    g_models = new test::TempDir();
    synth_model(tiny(g_models->file("st")));
    synth_gguf(tiny(""), ConvertType::Q8_0, GgufMetadata(), g_models->file("m.gguf"));
  }
  static void TearDownTestSuite() {
    delete g_models;
    g_models = nullptr;
  }
};

// A fresh copy of the model (the scenario damages it); returns the path to
// load and sets `weights` to the file to damage.
std::string copy_model(bool gguf, const std::string& to, std::string& weights) {
  fs::create_directories(to);
  if (gguf) {
    weights = to + "/m.gguf";
    fs::copy_file(g_models->file("m.gguf"), weights);
    return weights;
  }
  for (auto& f : fs::directory_iterator(g_models->file("st"))) {
    fs::copy_file(f.path(), to + "/" + f.path().filename().string());
    if (f.path().extension() == ".safetensors") weights = to + "/" + f.path().filename().string();
  }
  return to;
}

void damage(const std::string& path, Damage d) {
  if (d == Damage::Truncate) {
    fs::resize_file(path, 4096);  // every tensor's bytes gone, dense ones included
    return;
  }
  // Other bytes, same size: every byte after the first 64 KiB inverted
  // (the header stays readable; the weights do not stay the same).
  std::string bytes = test::read_file(path);
  for (size_t i = std::min<size_t>(65536, bytes.size() / 2); i < bytes.size(); ++i) bytes[i] = char(~bytes[i]);
  // The coarse mtime clock ticks every few ms; make sure the rewrite is
  // not in the same tick as the file's creation.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int fd = ::open(path.c_str(), O_WRONLY);  // in place: same inode, no truncation
  if (fd < 0 || ::pwrite(fd, bytes.data(), bytes.size(), 0) != ssize_t(bytes.size())) {
    std::fprintf(stderr, "cannot rewrite %s\n", path.c_str());
    std::_Exit(4);
  }
  ::close(fd);
}

EngineOptions options_for(const Mode& m) {
  EngineOptions o;
  o.threads = 2;
  if (m.store) {
    // Room for every expert (a few MiB): after the first step every
    // acquire is a hit, which must be refused too.
    o.expert_ram = 64ull << 20;
    o.io = m.io;
  }
  return o;
}

// Runs in the child: load, step, damage, step twice; every step after the
// damage must throw the Error. Exits 0 only if it all went as required,
// printing what it saw on stderr either way.
[[noreturn]] void scenario(bool gguf, const Mode& m, Damage d) {
  test::TempDir tmp;
  std::string weights;
  const std::string model = copy_model(gguf, tmp.file("model"), weights);
  int code = 0;
  {
    auto engine = Engine::load(model, options_for(m));
    Session s(engine);
    const std::vector<int32_t> prompt = {1, 5, 9, 2, 7};
    s.step(prompt);
    damage(weights, d);
    for (int i = 0; i < 2; ++i) {
      const int32_t tok = 3 + i;
      try {
        s.step(std::span<const int32_t>(&tok, 1));
        std::fprintf(stderr, "step %d after the change: no error\n", i);
        code = 1;
      } catch (const Error& e) {
        const std::string what = e.what();
        std::fprintf(stderr, "step %d: %s\n", i, what.c_str());
        if (what.find("changed since it was opened") == std::string::npos) code = 2;
        if (what.find(weights) == std::string::npos) code = 3;  // names the file
      }
    }
    std::fprintf(stderr, "source: %s\n", engine->expert_source().c_str());
  }
  std::fflush(stderr);
  std::_Exit(code);
}

void expect_refused_in_every_mode(bool gguf) {
  for (const Mode& m : kModes)
    for (Damage d : {Damage::Truncate, Damage::Rewrite}) {
      SCOPED_TRACE(std::string(gguf ? "gguf " : "safetensors ") + m.name +
                   (d == Damage::Truncate ? " truncated" : " rewritten in place"));
      EXPECT_EXIT(scenario(gguf, m, d), ::testing::ExitedWithCode(0), "changed since it was opened");
    }
}


// The race the checks between steps cannot close: the file shrinks while a
// kernel reads an expert through the map (no --expert-ram). The read gets
// zeros instead of SIGBUS, and the next acquire reports the file.
[[noreturn]] void shrink_while_an_expert_is_read() {
  test::TempDir tmp;
  std::string weights;
  const std::string model = copy_model(false, tmp.file("model"), weights);
  auto engine = Engine::load(model, options_for(kModes[0]));
  ExpertSource& src = *engine->impl().experts;
  std::vector<int32_t> ids = {0, 1, 2, 3};
  std::vector<ExpertWeights> w(ids.size());
  src.acquire(1, ids, w);
  fs::resize_file(weights, 4096);
  volatile uint8_t sink = 0;
  for (const ExpertWeights& x : w)
    for (const WeightView* v : {&x.gate, &x.up, &x.down})
      for (size_t i = 0; i < v->row_bytes() * size_t(v->rows); ++i) sink = sink | v->data[i];
  src.release(1, ids);
  std::string what;
  try {
    src.acquire(0, ids, w);
  } catch (const Error& e) {
    what = e.what();
  }
  std::fprintf(stderr, "%s\n", what.c_str());
  const bool ok = what.find("changed since it was opened") != std::string::npos &&
                  what.find("faulted") != std::string::npos && what.find(weights) != std::string::npos;
  std::_Exit(ok ? 0 : 1);
}

// Truncation at a moment of a decode loop (the `chat` case of the issue):
// no signal, and an Error naming the file within two steps.
[[noreturn]] void truncate_during_decode(const Mode& m) {
  test::TempDir tmp;
  std::string weights;
  const std::string model = copy_model(false, tmp.file("model"), weights);
  auto engine = Engine::load(model, options_for(m));
  Session s(engine);
  std::atomic<int> steps{0}, cut_at{-1};
  std::thread cutter([&] {
    while (steps.load() < 3) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(300));
    fs::resize_file(weights, 4096);
    cut_at = steps.load();  // after: the step in flight may still complete, the next must not
  });
  std::string what;
  int32_t tok = 1;
  for (int i = 0; i < 1000 && what.empty(); ++i) {
    try {
      s.step(std::span<const int32_t>(&tok, 1));
      steps++;
      tok = (tok * 7 + 3) % 200;
    } catch (const Error& e) {
      what = e.what();
    }
  }
  cutter.join();
  const int after = steps.load() - cut_at.load();
  std::fprintf(stderr, "%d steps after the cut: %s\n", after, what.c_str());
  std::_Exit(what.find("changed since it was opened") != std::string::npos && after <= 2 ? 0 : 1);
}

// A guarded map reads zeros past a shrunk file's end and says where.
[[noreturn]] void guarded_map_reads_zeros() {
  test::TempDir tmp;
  const std::string path = tmp.file("f");
  test::write_file(path, std::string(5 * 4096, 'x'));
  MappedFile m(path);
  m.guard();
  fs::resize_file(path, 4096 + 10);
  const bool ok = m.data()[100] == 'x' && m.data()[4096 + 5] == 'x' && m.data()[3 * 4096] == 0 &&
                  m.data()[2 * 4096] == 0 && m.fault_offset() == 2 * 4096;
  std::fprintf(stderr, "%s\n", m.changed().c_str());
  std::_Exit(ok && m.changed().find("faulted at offset 8192") != std::string::npos ? 0 : 1);
}

// An unguarded map still gets the default action, handler installed or not.
[[noreturn]] void unguarded_map_still_faults() {
  test::TempDir tmp;
  const std::string path = tmp.file("f");
  test::write_file(path, std::string(5 * 4096, 'x'));
  MappedFile guarded(path);
  guarded.guard();
  MappedFile m(path);
  fs::resize_file(path, 4096);
  volatile uint8_t v = m.data()[3 * 4096];
  (void)v;
  std::_Exit(0);
}

}  // namespace

TEST_F(ChangedFile, SafetensorsTruncatedOrRewrittenIsAnErrorInEveryMode) { expect_refused_in_every_mode(false); }

TEST_F(ChangedFile, GgufTruncatedOrRewrittenIsAnErrorInEveryMode) { expect_refused_in_every_mode(true); }

TEST_F(ChangedFile, ShrinkWhileAnExpertIsReadThroughTheMapIsAnErrorNotASignal) {
  EXPECT_EXIT(shrink_while_an_expert_is_read(), ::testing::ExitedWithCode(0), "changed since it was opened");
}

TEST_F(ChangedFile, TruncatedDuringDecodeIsAnErrorWithinTwoSteps) {
  for (const Mode& m : {kModes[0], kModes[4]}) {
    SCOPED_TRACE(m.name);
    EXPECT_EXIT(truncate_during_decode(m), ::testing::ExitedWithCode(0), "changed since it was opened");
  }
}

TEST(MappingGuard, GuardedMapReadsZerosPastTheEndAndSaysWhere) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(guarded_map_reads_zeros(), ::testing::ExitedWithCode(0), "faulted");
  EXPECT_EXIT(unguarded_map_still_faults(), ::testing::KilledBySignal(SIGBUS), "");
}

TEST(MappingGuard, PreadOfAShrunkFileIsAnErrorNamingIt) {
  test::TempDir tmp;
  const std::string path = tmp.file("f");
  test::write_file(path, std::string(3 * 4096, 'x'));
  MappedFile m(path);
  EXPECT_EQ(m.changed(), "");
  fs::resize_file(path, 4096);
  std::string buf(4096, '\0');
  try {
    m.read(2 * 4096, buf.data(), buf.size());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + " changed since it was opened"), std::string::npos) << e.what();
  }
  EXPECT_NE(m.changed().find("size changed from 12288 to 4096"), std::string::npos) << m.changed();
  EXPECT_EQ(MappedFile::holding(m.data() + 5), &m);
  MappedFile moved = std::move(m);
  EXPECT_EQ(MappedFile::holding(moved.data() + 5), &moved);
}
