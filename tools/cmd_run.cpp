// moeflux run MODEL -p "...": one prompt in, the answer streamed out.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "generation.h"
#include "model/model_spec.h"
#include "sampling_args.h"
#include "text_model.h"

namespace moeflux::cli {

namespace {

struct RunArgs {
  ModelArgs model;
  SamplingArgs sampling;
  std::string prompt, system, chat_template;
  bool raw = false, quiet = false;
  int context = 0;
};

void run_run(const RunArgs& a) {
  TextModel m = load_text_model(a.model, a.chat_template);
  std::vector<int32_t> ids;
  if (a.raw) {
    ids = m.tokenizer.encode(a.prompt, /*add_special_tokens=*/true);
  } else {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
    messages.push_back({{"role", "user"}, {"content", a.prompt}});
    // The rendered template carries its own BOS where the model wants one.
    ids = m.tokenizer.encode(m.chat_template.render(messages), /*add_special_tokens=*/false);
  }
  check_context(a.context, m.engine->spec());
  Session session(m.engine, a.context);
  Sampler sampler(a.sampling.resolve(m.engine->spec().vocab), m.engine->spec().vocab);
  auto st = generate_text(session, m.tokenizer, ids, sampler, a.sampling.stop_conditions(m.stop_tokens),
                          [](const std::string& text) {
                            std::fwrite(text.data(), 1, text.size(), stdout);
                            std::fflush(stdout);
                          });
  std::printf("\n");
  if (!a.quiet)
    fmt::print(stderr, "[{} prompt tokens: {:.1f} tok/s prefill | {} tokens: {:.2f} tok/s decode | stop: {}]\n",
               st.prompt_tokens, st.prefill_tok_s(), st.generated_tokens, st.decode_tok_s(), st.stop_reason);
  if (auto line = expert_stats_line(*m.engine, st.generated_tokens); !line.empty() && !a.quiet)
    fmt::print(stderr, "{}\n", line);
}

}  // namespace

void register_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "answer one prompt, streaming the text");
  auto a = std::make_shared<RunArgs>();
  a->model.add_to(cmd);
  cmd->add_option("-p,--prompt", a->prompt, "the prompt text")->required();
  cmd->add_option("--system", a->system, "system message (chat mode)");
  cmd->add_flag("--raw", a->raw, "plain completion: no chat template");
  cmd->add_option("--chat-template", a->chat_template, "Jinja chat template file to use instead of the model's");
  cmd->add_option("--context", a->context, "context length (0: the model's maximum)")->check(int_range(0, INT32_MAX, "(0: the model's maximum)"));
  cmd->add_flag("-q,--quiet", a->quiet, "no speed line at the end");
  a->sampling.add_to(cmd);
  cmd->callback([a] { run_run(*a); });
}

}  // namespace moeflux::cli
