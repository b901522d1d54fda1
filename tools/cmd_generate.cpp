// moeflux generate MODEL --tokens ... -n N: greedy continuation as token ids.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "cli_util.h"
#include "commands.h"
#include "core/error.h"
#include "model/model_spec.h"
#include "text_model.h"

namespace moeflux::cli {

namespace {

struct GenerateArgs {
  ModelArgs model;
  std::string tokens, prompt;
  int n = 16;
  bool stop_at_eos = true;
};

void run_generate(const GenerateArgs& a) {
  if (a.tokens.empty() == a.prompt.empty()) fail("generate needs exactly one of --tokens and --prompt");
  std::optional<Tokenizer> tok;
  if (!a.prompt.empty()) tok = load_tokenizer(a.model.path);
  const auto prompt = tok ? tok->encode(a.prompt) : parse_token_list(a.tokens);
  if (prompt.empty()) fail("--prompt encodes to no tokens");
  auto engine = a.model.load();
  Session session(engine);
  if (int64_t(prompt.size()) + a.n > session.max_positions())
    fail("prompt of {} tokens plus {} new ones exceeds the context of {}", prompt.size(), a.n, session.max_positions());
  const auto eos = engine->spec().eos_token;
  const double t0 = now_seconds();
  auto logits = session.step(prompt);
  const double t1 = now_seconds();
  std::vector<int32_t> out;
  for (int i = 0; i < a.n; ++i) {
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    std::printf("%s%d", i ? "," : "", next);
    std::fflush(stdout);
    if (a.stop_at_eos && eos && next == *eos) break;
    if (i + 1 < a.n) logits = session.step(std::span<const int32_t>(&out.back(), 1));
  }
  const double t2 = now_seconds();
  std::printf("\n");
  if (tok) std::printf("%s\n", tok->decode(out).c_str());
  const double decode_steps = double(std::max<size_t>(out.size(), 1) - 1);
  fmt::print(stderr, "prefill {} tokens in {:.3f} s ({:.1f} tok/s); decode {} tokens in {:.3f} s ({:.2f} tok/s)\n",
             prompt.size(), t1 - t0, double(prompt.size()) / (t1 - t0), out.size(), t2 - t1,
             decode_steps > 0 ? decode_steps / (t2 - t1) : 0.0);
  if (auto line = expert_stats_line(*engine, int(out.size())); !line.empty()) fmt::print(stderr, "{}\n", line);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "greedy continuation of a token-id prompt, printed as token ids");
  auto a = std::make_shared<GenerateArgs>();
  a->model.add_to(cmd);
  cmd->add_option("--tokens", a->tokens, "comma-separated prompt token ids");
  cmd->add_option("--prompt", a->prompt, "prompt text (then the decoded text is printed after the ids)");
  cmd->add_option("-n,--max-tokens", a->n, "tokens to generate")->check(int_range(1, INT32_MAX));
  cmd->add_flag("!--ignore-eos", a->stop_at_eos, "keep going past the end-of-sequence token");
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace moeflux::cli
