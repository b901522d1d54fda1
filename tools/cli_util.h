// Small helpers shared by the CLI commands.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moeflux/engine.h"

namespace moeflux::cli {

// "1,2,3" -> {1, 2, 3}; throws moeflux::Error naming the bad entry.
std::vector<int32_t> parse_token_list(const std::string& s);
std::string join_tokens(const std::vector<int32_t>& ids);

// Options every command that loads a model takes.
struct ModelArgs {
  std::string path;
  int threads = 0;
  void add_to(CLI::App* cmd);
  std::shared_ptr<Engine> load() const;
};

double now_seconds();
uint64_t peak_rss_bytes();

}  // namespace moeflux::cli
