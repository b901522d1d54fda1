// Cost of constrained JSON sampling per token with a real vocabulary: the
// time to compute the allowed-token mask at each position of a document
// (encoded with the tokenizer, then fed back token by token), plus the
// trie build. Also checks that every token of the valid document was
// allowed where it stood.
//
//   bench_json_mask_bench [tokenizer-dir]   (default: ../shared/tokenizers/qwen3)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "sampling/json_grammar.h"
#include "sampling/json_token_mask.h"
#include "text/tokenizer/tokenizer.h"

using namespace moeflux;
using namespace moeflux::json_constraint;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : std::string(MOEFLUX_SOURCE_DIR) + "/../shared/tokenizers/qwen3";
  Tokenizer tok = Tokenizer::load(dir + "/tokenizer.json.gz", dir + "/tokenizer_config.json");
  std::vector<std::string> bytes(size_t(tok.vocab_size()));
  for (int32_t i = 0; i < tok.vocab_size(); ++i) bytes[size_t(i)] = tok.token_bytes(i);
  auto t0 = Clock::now();
  auto trie = std::make_shared<const MaskVocab>(bytes);
  std::printf("vocab %d, trie built in %.1f ms\n", tok.vocab_size(), ms_since(t0));

  const char* schema = R"({"type":"object","properties":{
    "name":{"type":"string"},"age":{"type":"integer"},"email":{"type":"string"},
    "tags":{"type":"array","items":{"type":"string"}},
    "address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["city"]},
    "score":{"type":"number"}},"required":["name","age"]})";
  const std::string doc =
      "{\n  \"name\": \"Ada Lovelace\",\n  \"age\": 36,\n  \"email\": \"ada@example.org\",\n  \"tags\": [\"math\", "
      "\"engines\", \"poetry\"],\n  \"address\": {\"street\": \"12 St James's Square\", \"city\": \"London\"},\n  "
      "\"score\": 99.5\n}";
  auto grammar = std::make_shared<const Grammar>(Grammar::from_schema_text(schema));
  const std::vector<int32_t> ids = tok.encode(doc, false);
  JsonTokenMask mask(grammar, trie, {0});
  std::vector<double> ms, walk_ms;
  std::vector<uint8_t> ok, ref;
  size_t allowed_sum = 0;
  for (int32_t id : ids) {
    auto t = Clock::now();
    mask.allowed(ok);
    ms.push_back(ms_since(t));
    allowed_sum += size_t(std::count(ok.begin(), ok.end(), 1));
    t = Clock::now();
    mask.allowed_by_walk(ref);
    walk_ms.push_back(ms_since(t));
    if (ok != ref) {
      std::printf("the mask differs from the full walk before token %d\n", id);
      return 1;
    }
    if (!ok[size_t(id)]) {
      std::printf("token %d '%s' of the document was not allowed\n", id, bytes[size_t(id)].c_str());
      return 1;
    }
    mask.accept(id, bytes[size_t(id)]);
  }
  auto report = [](const char* what, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    double total = 0;
    for (double m : v) total += m;
    std::printf("%-18s median %.2f ms, p90 %.2f ms, max %.2f ms, mean %.2f ms\n", what, v[v.size() / 2],
                v[v.size() * 9 / 10], v.back(), total / double(v.size()));
  };
  std::printf("%zu tokens, %.0f allowed on average\n", ms.size(), double(allowed_sum) / double(ms.size()));
  report("mask", ms);
  report("full trie walk", walk_ms);
  std::printf("complete: %s\n", mask.complete() ? "yes" : "no");
  return mask.complete() ? 0 : 1;
}
