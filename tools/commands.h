// Each CLI command lives in its own file and registers a CLI11 subcommand.
#pragma once
#include <CLI/CLI.hpp>

namespace moeflux::cli {

void register_inspect(CLI::App& app);
void register_score(CLI::App& app);
void register_generate(CLI::App& app);
void register_synth(CLI::App& app);
void register_convert(CLI::App& app);
void register_bench(CLI::App& app);
void register_demo(CLI::App& app);
void register_run(CLI::App& app);
void register_chat(CLI::App& app);
void register_serve(CLI::App& app);

}  // namespace moeflux::cli
