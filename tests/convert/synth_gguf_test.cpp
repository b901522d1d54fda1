// synth --type: the GGUF written straight from the generator is the file
// `convert` makes of the safetensors model `synth` writes for the same
// options, byte for byte; and writing it keeps memory flat.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convert/convert_hf.h"
#include "format/gguf/gguf_file.h"
#include "model/synth.h"
#include "moeflux/error.h"
#include "test_util.h"

using namespace moeflux;
using namespace moeflux::test;

namespace {

SynthOptions tiny(const std::string& out, double skew = 0) {
  SynthOptions o;
  o.preset = "tiny-moe";
  o.out_dir = out;
  o.layers = 2;
  o.experts = 4;
  o.seed = 7;
  o.route_skew = skew;
  o.progress = false;
  return o;
}

TEST(SynthGguf, EqualsConvertOfTheSafetensorsSynth) {
  for (double skew : {0.0, 2.0}) {
    for (ConvertType t : {ConvertType::Q8_0, ConvertType::Q4_K_M, ConvertType::BF16}) {
      TempDir tmp;
      synth_model(tiny(tmp.file("hf"), skew));
      ConvertOptions c;
      c.hf_dir = tmp.file("hf");
      c.out_path = tmp.file("converted.gguf");
      c.type = t;
      c.name = "tiny-moe";
      c.progress = false;
      convert_hf_to_gguf(c);
      const uint64_t bytes = synth_gguf(tiny(tmp.file("unused"), skew), t, GgufMetadata(), tmp.file("synth.gguf"));
      EXPECT_EQ(bytes, std::filesystem::file_size(tmp.file("synth.gguf")));
      EXPECT_TRUE(read_file(tmp.file("converted.gguf")) == read_file(tmp.file("synth.gguf")))
          << "skew " << skew << " type " << convert_type_name(t);
    }
  }
}

TEST(SynthGguf, TokenizerMetadataIsWrittenAndExistingFileRefused) {
  TempDir tmp;
  GgufMetadata tok;
  tok.add("tokenizer.ggml.model", {std::string("gpt2")});
  synth_gguf(tiny(""), ConvertType::Q8_0, tok, tmp.file("m.gguf"));
  const GgufFile f(tmp.file("m.gguf"));
  EXPECT_EQ(f.metadata().get_str("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.metadata().get_str("general.name"), "tiny-moe");
  EXPECT_EQ(f.tensor("blk.1.ffn_down_exps.weight").dims, (std::vector<uint64_t>{256, 256, 4}));
  try {
    synth_gguf(tiny(""), ConvertType::Q8_0, tok, tmp.file("m.gguf"));
    FAIL() << "overwrote an existing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
}

TEST(SynthGguf, MemoryStaysFlat) {
  // olmoe-1b-7b with one layer and 8 experts: two 50304 x 2048 matrices
  // (embedding, output) of 412 MB each as f32. Streaming keeps the peak
  // resident set far below one of them; holding a tensor whole would not.
  TempDir tmp;
  const pid_t pid = fork();
  if (pid == 0) {
    SynthOptions o;
    o.preset = "olmoe-1b-7b";
    o.layers = 1;
    o.experts = 8;
    o.progress = false;
    try {
      synth_gguf(o, ConvertType::Q8_0, GgufMetadata(), tmp.file("m.gguf"));
    } catch (...) {
      _exit(3);
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    _exit(ru.ru_maxrss < (200l << 10) ? 0 : 4);  // KiB
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "3: synth failed, 4: peak RSS over 200 MiB";
  EXPECT_GT(std::filesystem::file_size(tmp.file("m.gguf")), uint64_t(200) << 20);
}

}  // namespace
