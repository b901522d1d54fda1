// moeflux serve MODEL: the OpenAI-compatible HTTP server (src/server).
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>
#include <filesystem>

#include "cli_util.h"
#include "commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/model_spec.h"
#include "server/server.h"
#include "text_model.h"

namespace moeflux::cli {

namespace {

struct ServeArgs {
  ModelArgs model;
  server::ServerOptions server;
  std::string chat_template, name, state_budget, prefix_cache;
};

// "512M", "2G", "1.5G", "1048576" -> bytes.
uint64_t parse_bytes(const std::string& s, const char* option) {
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
  }
  const std::string unit = s.substr(used);
  double mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  if (mult == 0 || !(v >= 0) || v * mult > 1e18) fail("{} '{}': expected a size such as 512M or 4G", option, s);
  return uint64_t(v * mult);
}

std::atomic<bool> g_quit{false};
void on_signal(int) { g_quit = true; }

void run_serve(ServeArgs& a) {
  if (!a.state_budget.empty()) a.model.state_budget = parse_bytes(a.state_budget, "--state-budget");
  if (!a.prefix_cache.empty()) a.server.prefix_cache_bytes = parse_bytes(a.prefix_cache, "--prefix-cache");
  TextModel m = load_text_model(a.model, a.chat_template);
  server::ServerModel sm{m.engine, m.tokenizer, m.chat_template, m.stop_tokens, a.name};
  if (sm.name.empty()) sm.name = std::filesystem::path(a.model.path).filename().string();
  if (sm.name.empty()) sm.name = std::filesystem::path(a.model.path).parent_path().filename().string();
  server::Server srv(std::move(sm), a.server);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const int port = srv.start();
  fmt::print(stderr, "moeflux serve: {} ({}, {} slot{}, context {}{}){}\nlistening on http://{}:{}\n", a.model.path,
             m.engine->spec().arch, a.server.slots, a.server.slots == 1 ? "" : "s",
             a.server.context ? a.server.context : m.engine->spec().max_positions,
             a.model.state_budget ? ", state budget " + human_bytes(a.model.state_budget) : "",
             m.template_is_fallback ? " (no chat template in the model: using ChatML)" : "", a.server.host, port);
  // Ctrl-C or SIGTERM: the handler only sets a flag; stopping the server
  // (closing sockets, joining threads) happens here.
  while (!g_quit) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  fmt::print(stderr, "moeflux serve: stopping\n");
  srv.stop();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat and completions, streamed or not)");
  auto a = std::make_shared<ServeArgs>();
  a->model.add_to(cmd);
  cmd->add_option("--host", a->server.host, "address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", a->server.port, "port (0: any free one)")->check(int_range(0, 65535));
  cmd->add_option("--parallel,--slots", a->server.slots, "sessions generating at once")->check(int_range(1, 1024));
  cmd->add_option("--max-queue", a->server.max_queue, "requests waiting for a session before 503")
      ->check(int_range(0, 65536));
  cmd->add_option("--context", a->server.context, "positions per session (0: the model's maximum)")
      ->check(int_range(0, INT32_MAX, "(0: the model's maximum)"));
  cmd->add_option("--state-budget", a->state_budget, "bytes all sessions may hold in KV state, e.g. 4G (default: no limit)");
  cmd->add_option("--prefix-cache", a->prefix_cache,
                  "RAM for states of earlier requests, to resume shared prefixes from, e.g. 2G (default: off)");
  cmd->add_option("--prefix-cache-min-tokens", a->server.prefix_cache_min_tokens,
                  "shortest token sequence the prefix cache keeps (default 64)")
      ->check(int_range(1, INT32_MAX));
  cmd->add_flag("!--no-batch-decode", a->server.batch_decode,
               "run each request's decode steps alone instead of in shared passes (for comparison)");
  cmd->add_option("--session-dir", a->server.session_dir,
                  "directory of saved sessions for the load_session / save_session request fields");
  cmd->add_option("--chat-template", a->chat_template, "Jinja chat template file to use instead of the model's");
  cmd->add_option("--model-name", a->name, "model id the API reports (default: the model directory's name)");
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace moeflux::cli
