// moeflux score MODEL --tokens ...: the log-probability the model gives each
// next token, and its top-k at each position.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli_util.h"
#include "core/error.h"
#include "core/output_file.h"
#include "commands.h"
#include "model/model_spec.h"
#include "text_model.h"

namespace moeflux::cli {

namespace {

struct ScoreArgs {
  ModelArgs model;
  std::string tokens, prompt;
  int top_k = 5;
  bool json = false;
  std::string logits_out;
  bool force = false;
};

// Raw logits as a NumPy .npy file (float32, shape [tokens, vocab]),
// published only when complete (core/output_file.h), so comparison scripts
// read all or nothing.
void write_logits_npy(const std::string& path, std::span<const float> logits, size_t tokens, size_t vocab,
                      Replace replace) {
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", tokens, vocab);
  header.append(64 - (10 + header.size() + 1) % 64, ' ');  // data 64-byte aligned, as numpy writes
  header += '\n';
  OutputFile f(path, replace);
  const uint16_t hlen = uint16_t(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(&hlen, 2);
  f.write(header);
  f.write(logits.data(), sizeof(float) * tokens * vocab);
  f.commit();
}

std::vector<float> log_softmax(std::span<const float> x) {
  const float m = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (float v : x) sum += std::exp(double(v) - m);
  const float lse = m + float(std::log(sum));
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] - lse;
  return out;
}

void run_score(const ScoreArgs& a) {
  if (a.tokens.empty() == a.prompt.empty()) fail("score needs exactly one of --tokens and --prompt");
  const auto tokens = a.prompt.empty() ? parse_token_list(a.tokens) : load_tokenizer(a.model.path).encode(a.prompt);
  if (tokens.empty()) fail("--prompt encodes to no tokens");
  const Replace replace = a.force ? Replace::Yes : Replace::No;
  if (!a.logits_out.empty()) check_output_path(a.logits_out, replace);  // before the model is loaded
  auto engine = a.model.load();
  const int vocab = engine->spec().vocab;
  Session session(engine);
  auto logits = session.step(tokens, /*all_logits=*/true);
  if (!a.logits_out.empty()) write_logits_npy(a.logits_out, logits, tokens.size(), size_t(vocab), replace);
  nlohmann::ordered_json out;
  out["tokens"] = tokens;
  out["positions"] = nlohmann::ordered_json::array();
  double total = 0;
  const int k = std::min(a.top_k, vocab);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto lp = log_softmax(logits.subspan(i * size_t(vocab), size_t(vocab)));
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t x, int32_t y) { return lp[size_t(x)] != lp[size_t(y)] ? lp[size_t(x)] > lp[size_t(y)] : x < y; });
    nlohmann::ordered_json pos;
    pos["pos"] = i;
    const bool has_next = i + 1 < tokens.size();
    if (has_next) {
      pos["next_token"] = tokens[i + 1];
      pos["logprob"] = lp[size_t(tokens[i + 1])];
      total += lp[size_t(tokens[i + 1])];
    }
    pos["top"] = nlohmann::ordered_json::array();
    for (int j = 0; j < k; ++j)
      pos["top"].push_back(nlohmann::ordered_json{{"token", order[size_t(j)]}, {"logprob", lp[size_t(order[size_t(j)])]}});
    if (!a.json) {
      std::string tops;
      for (int j = 0; j < k; ++j) tops += fmt::format(" {}:{:.3f}", order[size_t(j)], lp[size_t(order[size_t(j)])]);
      if (has_next)
        fmt::print("pos {:4d}  next {:6d}  logprob {:9.4f}  top{}\n", i, tokens[i + 1], lp[size_t(tokens[i + 1])], tops);
      else
        fmt::print("pos {:4d}  (end)                          top{}\n", i, tops);
    }
    if (has_next) out["positions"].push_back(pos);
    else out["last"] = pos;
  }
  const size_t scored = tokens.size() - 1;
  out["sum_logprob"] = total;
  if (scored) out["perplexity"] = std::exp(-total / double(scored));
  if (a.json) {
    fmt::print("{}\n", out.dump(2));
  } else if (scored) {
    fmt::print("scored {} tokens: sum logprob {:.4f}, perplexity {:.4f}\n", scored, total,
               std::exp(-total / double(scored)));
  }
}

}  // namespace

void register_score(CLI::App& app) {
  auto* cmd = app.add_subcommand("score", "log-probability of each next token and the top-k at each position");
  auto a = std::make_shared<ScoreArgs>();
  a->model.add_to(cmd);
  cmd->add_option("--tokens", a->tokens, "comma-separated token ids, e.g. 1,2,3");
  cmd->add_option("--prompt", a->prompt, "text, encoded with the model's tokenizer");
  cmd->add_option("--top-k", a->top_k, "alternatives shown per position")->check(int_range(1, INT32_MAX));
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->add_option("--logits-out", a->logits_out, "also write every position's raw logits to this .npy file (float32)");
  cmd->add_flag("--force", a->force, "replace the --logits-out file if it exists");
  cmd->callback([a] { run_score(*a); });
}

}  // namespace moeflux::cli
