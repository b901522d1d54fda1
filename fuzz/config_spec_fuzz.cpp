// libFuzzer target for config.json -> ModelSpec (model_spec_from_config),
// transformers 4.x and 5.x forms alike. Any input must either give a spec or
// throw moeflux::Error: no crash, no UB (UBSan), no other exception type
// (a json::exception escaping would print "internal error" with no file
// named), no allocation the input's size does not justify beyond the
// per-layer flags (layers are capped at 2^24). When a spec comes out, it is
// checked for the invariants the engine relies on.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"
#include "model/model_spec.h"
#include "moeflux/error.h"

using namespace moeflux;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "config_spec_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;  // Config::load turns these into Error naming the file
  }
  if (!j.is_object()) return 0;
  ModelSpec s;
  try {
    s = model_spec_from_config(Config(std::move(j), "fuzz/config.json"));
  } catch (const Error&) {
    return 0;
  }
  check(s.vocab > 0 && s.hidden > 0 && s.layers > 0 && s.heads > 0 && s.kv_heads > 0, "positive sizes");
  check(s.head_dim > 0 && s.head_dim % 2 == 0 && s.heads % s.kv_heads == 0, "attention shape");
  check(int64_t(s.heads) * s.head_dim <= (int64_t(1) << 24), "q_dim bounded");
  check(s.layer_is_moe.size() == size_t(s.layers), "one flag per layer");
  check(s.top_k >= 1 && s.top_k <= s.experts, "top_k in [1, experts]");
  check(s.rms_eps > 0 && s.rms_eps <= 1, "eps in (0, 1]");
  check(s.rope_theta > 0 && s.rope_theta < 1e31f, "theta positive and finite");
  check(!s.clip_qkv || *s.clip_qkv > 0, "clip_qkv positive");
  check(!s.bos_token || (*s.bos_token >= 0 && *s.bos_token < s.vocab), "bos in vocab");
  check(!s.eos_token || (*s.eos_token >= 0 && *s.eos_token < s.vocab), "eos in vocab");
  for (int l = 0; l < s.layers; ++l) check(s.layer_is_moe[size_t(l)] || s.dense_ffn > 0, "dense layers have an FFN");
  return 0;
}
