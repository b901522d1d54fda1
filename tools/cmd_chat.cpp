// moeflux chat MODEL: interactive multi-turn chat. Line editing and history
// through GNU readline on a terminal; plain lines from a pipe. Ctrl-C stops
// the answer being generated, not the program; Ctrl-D or /exit leaves.
#include <fmt/format.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "core/error.h"
#include "generation.h"
#include "model/model_spec.h"
#include "sampling_args.h"
#include "text_model.h"

namespace moeflux::cli {

namespace {

// Resumes the session at the longest prefix it can keep of the `common`
// tokens it shares with the new prompt, and returns that length. A KV-only
// model keeps any prefix (rewind); one with recurrent state resumes from
// the latest turn checkpoint inside the prefix, or from the start.
size_t resume_point(Session& session, const std::vector<SessionCheckpoint>& turn_ends, size_t common) {
  if (session.can_rewind()) {
    session.rewind(int(common));
    return common;
  }
  const SessionCheckpoint* best = nullptr;
  for (const SessionCheckpoint& cp : turn_ends)
    if (size_t(cp.position) <= common && session.can_restore(cp) && (!best || cp.position > best->position)) best = &cp;
  if (!best) {
    session.reset();
    return 0;
  }
  session.restore(*best);
  return size_t(best->position);
}

// Turn checkpoints kept for a model whose checkpoints copy recurrent state.
constexpr size_t kRecurrentTurnCheckpoints = 4;

std::atomic<bool> g_interrupt{false};
void on_sigint(int) { g_interrupt = true; }

struct ChatArgs {
  ModelArgs model;
  SamplingArgs sampling;
  std::string system, chat_template;
  int context = 0;
};

bool read_line(bool tty, std::string* line) {
  if (tty) {
    char* s = readline("> ");
    if (!s) return false;
    *line = s;
    if (*s) add_history(s);
    std::free(s);
    return true;
  }
  return bool(std::getline(std::cin, *line));
}

const char* kHelp =
    "/reset          forget the conversation\n"
    "/system TEXT    set the system message (and reset)\n"
    "/save FILE      save the conversation and its state (replaces only an earlier save)\n"
    "/load FILE      continue a conversation saved with /save (same model)\n"
    "/exit           leave (Ctrl-D too); Ctrl-C stops an answer\n";

void run_chat(const ChatArgs& a) {
  TextModel m = load_text_model(a.model, a.chat_template);
  const bool tty = isatty(STDIN_FILENO);
  check_context(a.context, m.engine->spec());
  Session session(m.engine, a.context);
  Sampler sampler(a.sampling.resolve(m.engine->spec().vocab), m.engine->spec().vocab);
  std::string system = a.system;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  std::vector<int32_t> in_cache;  // tokens the session holds, to send only the new ones
  std::vector<SessionCheckpoint> turn_ends;  // where each turn ended, to resume from
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, nullptr);
  fmt::print(stderr, "moeflux chat: {} ({}). /help for commands.{}\n", a.model.path, m.engine->spec().arch,
             m.template_is_fallback ? " (no chat template in the model: using ChatML)" : "");
  auto reset = [&] {
    messages = nlohmann::ordered_json::array();
    session.reset();
    sampler.reset();
    in_cache.clear();
    turn_ends.clear();
  };
  std::string line;
  while (read_line(tty, &line)) {
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/help") {
      fmt::print(stderr, "{}", kHelp);
      continue;
    }
    if (line == "/reset") {
      reset();
      fmt::print(stderr, "[conversation reset]\n");
      continue;
    }
    if (line.rfind("/system", 0) == 0) {
      system = line.size() > 8 ? line.substr(8) : "";
      reset();
      fmt::print(stderr, "[system message set; conversation reset]\n");
      continue;
    }
    if (line.rfind("/save ", 0) == 0 || line.rfind("/load ", 0) == 0) {
      const std::string file = line.substr(6);
      try {
        if (line[1] == 's') {
          const nlohmann::ordered_json saved = {{"messages", messages}, {"system", system}, {"tokens", in_cache}};
          session.save(file, saved.dump());
          fmt::print(stderr, "[saved {} turns, {} positions to {}]\n", messages.size(), session.position(), file);
        } else {
          const auto saved = nlohmann::ordered_json::parse(session.load(file), nullptr, false);
          if (saved.is_discarded() || !saved.contains("messages") || !saved.contains("tokens"))
            fail("{}: not a conversation saved by moeflux chat", file);
          auto tokens = saved["tokens"].get<std::vector<int32_t>>();
          if (int(tokens.size()) != session.position()) fail("{}: its token history does not match its state", file);
          messages = saved["messages"];
          system = saved.value("system", "");
          in_cache = std::move(tokens);
          turn_ends = {session.checkpoint()};
          sampler.reset();
          fmt::print(stderr, "[loaded {} turns, {} positions from {}]\n", messages.size(), session.position(), file);
        }
      } catch (const std::exception& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        // A refused file leaves the session as it was; one whose state
        // loaded but whose history did not starts over.
        if (int(in_cache.size()) != session.position()) {
          reset();
          fmt::print(stderr, "[conversation reset]\n");
        }
      }
      continue;
    }
    if (line[0] == '/') {
      fmt::print(stderr, "unknown command {}\n{}", line, kHelp);
      continue;
    }
    nlohmann::ordered_json turn = messages;
    if (turn.empty() && !system.empty()) turn.push_back({{"role", "system"}, {"content", system}});
    turn.push_back({{"role", "user"}, {"content", line}});
    try {
      const auto full = m.tokenizer.encode(m.chat_template.render(turn), false);
      // Reuse the cached prefix when the template re-renders history the same way.
      size_t common = 0;
      while (common < in_cache.size() && common < full.size() && in_cache[common] == full[common]) ++common;
      if (common == full.size()) --common;  // at least one token must be fed to get logits
      common = resume_point(session, turn_ends, common);
      in_cache.resize(common);
      std::vector<int32_t> fresh(full.begin() + long(common), full.end());
      // A recurrent model resumes only from checkpoints: one where the
      // prompt ends (all but its last token, whose logits start the answer)
      // stays valid when the answer re-tokenizes differently next turn.
      int pre_tokens = 0;
      double pre_s = 0;
      if (!session.can_rewind() && fresh.size() > 1) {
        const auto t0 = std::chrono::steady_clock::now();
        session.step(std::span<const int32_t>(fresh.data(), fresh.size() - 1));
        pre_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        pre_tokens = int(fresh.size() - 1);
        in_cache.insert(in_cache.end(), fresh.begin(), fresh.end() - 1);
        turn_ends.push_back(session.checkpoint());
        if (turn_ends.size() > kRecurrentTurnCheckpoints) turn_ends.erase(turn_ends.begin());
        fresh.erase(fresh.begin(), fresh.end() - 1);
      }
      std::string answer;
      std::vector<int32_t> generated;
      g_interrupt = false;
      auto st = generate_text(session, m.tokenizer, fresh, sampler, a.sampling.stop_conditions(m.stop_tokens),
                              [&](const std::string& t) {
                                answer += t;
                                std::fwrite(t.data(), 1, t.size(), stdout);
                                std::fflush(stdout);
                              },
                              &g_interrupt, &generated);
      st.prompt_tokens += pre_tokens;
      st.prefill_s += pre_s;
      std::printf("\n");
      in_cache = full;
      // The session now also holds the generated tokens but the last (its
      // logits were never fed back), so keep the cache in step.
      if (!generated.empty()) in_cache.insert(in_cache.end(), generated.begin(), generated.end() - 1);
      turn.push_back({{"role", "assistant"}, {"content", answer}});
      messages = turn;
      turn_ends.push_back(session.checkpoint());
      // A recurrent model's checkpoint holds a copy of its state (tens to
      // hundreds of MB for the large hybrids): keep the latest few turns.
      if (!session.can_rewind() && turn_ends.size() > kRecurrentTurnCheckpoints) turn_ends.erase(turn_ends.begin());
      fmt::print(stderr, "[{} prompt tokens {:.1f} tok/s | {} tokens {:.2f} tok/s | {} | context {}/{}]\n",
                 st.prompt_tokens, st.prefill_tok_s(), st.generated_tokens, st.decode_tok_s(), st.stop_reason,
                 session.position(), session.max_positions());
    } catch (const Error& e) {
      fmt::print(stderr, "error: {}\n", e.what());
      reset();
      fmt::print(stderr, "[conversation reset]\n");
    }
  }
}

}  // namespace

void register_chat(CLI::App& app) {
  auto* cmd = app.add_subcommand("chat", "interactive multi-turn chat");
  auto a = std::make_shared<ChatArgs>();
  a->model.add_to(cmd);
  cmd->add_option("--system", a->system, "system message");
  cmd->add_option("--chat-template", a->chat_template, "Jinja chat template file to use instead of the model's");
  cmd->add_option("--context", a->context, "context length (0: the model's maximum)")->check(int_range(0, INT32_MAX, "(0: the model's maximum)"));
  a->sampling.add_to(cmd);
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace moeflux::cli
