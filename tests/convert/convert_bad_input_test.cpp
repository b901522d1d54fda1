// convert refuses bad input with a message naming what is wrong, before
// writing anything where it can, and never leaves a partial output behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "convert/convert_hf.h"
#include "convert_test_util.h"

using namespace moeflux;
using namespace moeflux::test;
namespace fs = std::filesystem;

namespace {

ConvertOptions options(const std::string& dir, const std::string& out, ConvertType type = ConvertType::Q8_0) {
  ConvertOptions o;
  o.hf_dir = dir;
  o.out_path = out;
  o.type = type;
  o.progress = false;
  o.threads = 2;
  return o;
}

std::string error_of(const ConvertOptions& o) {
  try {
    convert_hf_to_gguf(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool nothing_written(const std::string& out) { return !fs::exists(out) && !fs::exists(out + ".partial"); }

TEST(ConvertBadInput, MissingTensorIsNamed) {
  TempDir tmp;
  HfWriteOptions w;
  w.drop = {"model.layers.1.mlp.experts.2.down_proj.weight"};
  write_hf_model(tmp.path(), qwen3_256_config(), w);
  const std::string e = error_of(options(tmp.path(), tmp.file("o.gguf")));
  EXPECT_NE(e.find("model.layers.1.mlp.experts.2.down_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  EXPECT_TRUE(nothing_written(tmp.file("o.gguf")));
}

TEST(ConvertBadInput, WrongShapeIsNamed) {
  TempDir tmp;
  HfWriteOptions w;
  w.shapes["model.layers.0.self_attn.k_proj.weight"] = {64, 256};
  write_hf_model(tmp.path(), qwen3_256_config(), w);
  const std::string e = error_of(options(tmp.path(), tmp.file("o.gguf")));
  EXPECT_NE(e.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[64, 256]"), std::string::npos) << e;
  EXPECT_TRUE(nothing_written(tmp.file("o.gguf")));
}

TEST(ConvertBadInput, IntegerTensorIsRefused) {
  TempDir tmp;
  auto cfg = qwen3_256_config();
  write_file(tmp.file("config.json"), cfg.dump());
  const ModelSpec spec = spec_of(cfg);
  std::vector<TensorDecl> decls;
  for (const auto& t : model_tensors(spec, arch_def(spec.arch)))
    decls.push_back({t.name, t.name == "model.norm.weight" ? DType::I32 : DType::F32, t.shape});
  SafetensorsWriter sw(tmp.file("model.safetensors"), decls);
  for (const auto& d : decls) sw.write(std::vector<uint8_t>(d.nbytes(), 0));
  sw.finish();
  const std::string e = error_of(options(tmp.path(), tmp.file("o.gguf")));
  EXPECT_NE(e.find("model.norm.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("I32"), std::string::npos) << e;
}

TEST(ConvertBadInput, UnsupportedArchitectureAndType) {
  TempDir tmp;
  auto cfg = qwen3_256_config();
  cfg["model_type"] = "llama";
  write_file(tmp.file("config.json"), cfg.dump());
  const std::string e = error_of(options(tmp.path(), tmp.file("o.gguf")));
  EXPECT_NE(e.find("'llama'"), std::string::npos) << e;
  EXPECT_FALSE(parse_convert_type("q2_k").has_value());
}

TEST(ConvertBadInput, NoModelDirectoryOrNoOutputDirectory) {
  TempDir tmp;
  EXPECT_NE(error_of(options(tmp.file("nope"), tmp.file("o.gguf"))).find("nope"), std::string::npos);
  write_hf_model(tmp.path(), qwen3_256_config());
  const std::string e = error_of(options(tmp.path(), tmp.file("missing_dir/o.gguf")));
  EXPECT_NE(e.find("missing_dir"), std::string::npos) << e;
}

TEST(ConvertBadInput, ExistingOutputNeedsOverwrite) {
  TempDir tmp;
  write_hf_model(tmp.path(), qwen3_256_config());
  write_file(tmp.file("o.gguf"), "keep me");
  const std::string e = error_of(options(tmp.path(), tmp.file("o.gguf")));
  EXPECT_NE(e.find("already exists"), std::string::npos) << e;
  EXPECT_EQ(read_file(tmp.file("o.gguf")), "keep me");
  ConvertOptions o = options(tmp.path(), tmp.file("o.gguf"));
  o.overwrite = true;
  convert_hf_to_gguf(o);
  EXPECT_GT(fs::file_size(tmp.file("o.gguf")), 1000u);
}

TEST(ConvertBadInput, NonFiniteWeightIsNamedForBlockFormats) {
  TempDir tmp;
  const ModelSpec spec = spec_of(qwen3_256_config());
  HfWriteOptions w;
  std::vector<float> v(size_t(spec.q_dim()) * spec.hidden, 0.01f);
  v[size_t(5) * spec.hidden + 3] = NAN;  // row 5
  w.values["model.layers.1.self_attn.q_proj.weight"] = v;
  write_hf_model(tmp.path(), qwen3_256_config(), w);
  const std::string e = error_of(options(tmp.path(), tmp.file("o.gguf"), ConvertType::Q4_K_M));
  EXPECT_NE(e.find("model.layers.1.self_attn.q_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("row 5"), std::string::npos) << e;
  EXPECT_TRUE(nothing_written(tmp.file("o.gguf")));
  // Float files keep the value, as llama.cpp's converter would.
  convert_hf_to_gguf(options(tmp.path(), tmp.file("f.gguf"), ConvertType::F16));
}

TEST(ConvertBadInput, WriteFailureMidFileLeavesNothing) {
  // A file-size limit makes the write fail part way, as a full disk would
  // (EFBIG instead of ENOSPC), in a child so the limit stays there.
  TempDir tmp;
  write_hf_model(tmp.path(), qwen3_256_config(4));
  const std::string out = tmp.file("o.gguf");
  const std::string msg = tmp.file("msg");
  const pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{256 << 10, 256 << 10};
    setrlimit(RLIMIT_FSIZE, &lim);
    const std::string e = error_of(options(tmp.path(), out, ConvertType::F32));
    FILE* f = std::fopen(msg.c_str(), "w");
    if (f) {
      std::fputs(e.c_str(), f);
      std::fclose(f);
    }
    _exit(e.empty() ? 1 : 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the conversion did not fail";
  const std::string e = read_file(msg);
  EXPECT_NE(e.find("cannot write"), std::string::npos) << e;
  EXPECT_TRUE(nothing_written(out));
}

}  // namespace
