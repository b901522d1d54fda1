#include <cstdio>

#include "commands.h"
#include "moeflux/error.h"

int main(int argc, char** argv) {
  CLI::App app{"moeflux: run Mixture-of-Experts models larger than memory"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moeflux 0.1.0");
  moeflux::cli::register_run(app);
  moeflux::cli::register_chat(app);
  moeflux::cli::register_serve(app);
  moeflux::cli::register_inspect(app);
  moeflux::cli::register_score(app);
  moeflux::cli::register_generate(app);
  moeflux::cli::register_synth(app);
  moeflux::cli::register_convert(app);
  moeflux::cli::register_bench(app);
  moeflux::cli::register_demo(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const moeflux::Error& e) {
    std::fprintf(stderr, "moeflux: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moeflux: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
