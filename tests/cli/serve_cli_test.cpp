// `moeflux serve` as a user starts it: a free port, a request, SIGTERM.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_util.h"

using namespace moeflux;

TEST(ServeCli, ServesOnTheAnnouncedPortAndStopsOnSigterm) {
  test::TempDir d;
  auto r = test::run_cli("synth --preset tiny-moe -o " + d.file("m") + " --layers 2 --experts 4 --seed 5");
  ASSERT_EQ(r.code, 0) << r.err;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string log = d.file("log");
    freopen(log.c_str(), "w", stderr);
    execl(MOEFLUX_CLI, MOEFLUX_CLI, "serve", d.file("m").c_str(), "--port", "0", "-t", "2", "--parallel", "2",
          "--state-budget", "64M", static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 300 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::string log = test::read_file(d.file("log"));
    const size_t at = log.find("listening on http://127.0.0.1:");
    if (at != std::string::npos && log.find('\n', at) != std::string::npos) port = std::stoi(log.substr(at + 30));
  }
  ASSERT_GT(port, 0) << test::read_file(d.file("log"));
  httplib::Client c("127.0.0.1", port);
  auto res = c.Post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":4})",
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(nlohmann::json::parse(res->body)["usage"]["completion_tokens"].get<int>() > 0, true);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("moeflux_state_budget_bytes 67108864"), std::string::npos) << metrics->body;
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(test::read_file(d.file("log")).find("stopping"), std::string::npos);
}
