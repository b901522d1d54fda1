// The OpenAI-compatible server, started in-process on a free port and
// spoken to over HTTP with cpp-httplib's client, on a synthetic model with
// moeflux's demo tokenizer.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/output_file.h"
#include "moeflux/engine.h"
#include "model/model_spec.h"
#include "model/synth.h"
#include "server/server.h"
#include "text/chat/tool_calls.h"
#include "test_util.h"

using namespace moeflux;
using json = nlohmann::json;

namespace {

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    SynthOptions o;
    o.preset = "tiny-moe";
    o.out_dir = dir_->file("m");
    o.layers = 2;
    o.experts = 4;
    o.seed = 5;
    o.progress = false;
    synth_model(o);
    const int vocab = load_model_spec(o.out_dir).vocab;
    write_output_file(o.out_dir + "/tokenizer.json", make_demo_tokenizer_json(vocab), Replace::No);
    write_output_file(o.out_dir + "/tokenizer_config.json", make_demo_tokenizer_config_json(), Replace::No);
    EngineOptions eo;
    eo.threads = 2;
    engine_ = new std::shared_ptr<Engine>(Engine::load(o.out_dir, eo));
  }
  static void TearDownTestSuite() {
    delete engine_;
    delete dir_;
  }

  static server::ServerModel model() {
    const std::string d = dir_->file("m");
    server::ServerModel m;
    m.engine = *engine_;
    m.tokenizer = Tokenizer::load(d + "/tokenizer.json");
    m.chat_template = *ChatTemplate::from_tokenizer_config(d + "/tokenizer_config.json");
    m.stop_tokens = m.tokenizer.eos_ids();
    m.name = "tiny";
    return m;
  }

  void start(server::ServerOptions o = {}) {
    o.port = 0;
    server_ = std::make_unique<server::Server>(model(), o);
    port_ = server_->start();
  }

  httplib::Result post(const std::string& path, const json& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60);
    return c.Post(path.c_str(), body.dump(), "application/json");
  }
  json post_ok(const std::string& path, const json& body) {
    auto r = post(path, body);
    EXPECT_TRUE(r) << "no response";
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body);
  }
  // The data: payloads of a streamed response, [DONE] included.
  static std::vector<std::string> events(const std::string& body) {
    std::vector<std::string> out;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
      const size_t end = body.find("\n\n", at);
      out.push_back(body.substr(at + 6, end - at - 6));
      at = end;
    }
    return out;
  }
  int eos() const { return model().stop_tokens.at(0); }
  std::string metric(const std::string& name) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Get("/metrics");
    const size_t at = r->body.find("\n" + name + " ");
    return at == std::string::npos ? "" : r->body.substr(at + name.size() + 2, r->body.find('\n', at + 1) - at - name.size() - 2);
  }

  static test::TempDir* dir_;
  static std::shared_ptr<Engine>* engine_;
  std::unique_ptr<server::Server> server_;
  int port_ = 0;
};
test::TempDir* ServerTest::dir_ = nullptr;
std::shared_ptr<Engine>* ServerTest::engine_ = nullptr;

const json kHello = json::array({{{"role", "user"}, {"content", "Hello there"}}});

TEST_F(ServerTest, ChatCompletionHasOpenAIsShapeAndUsage) {
  start();
  const json r = post_ok("/v1/chat/completions", {{"model", "tiny"}, {"messages", kHello}, {"max_tokens", 6}, {"seed", 1}});
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["model"], "tiny");
  ASSERT_EQ(r["choices"].size(), 1u);
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(r["choices"][0]["message"]["content"].is_string());
  const json& u = r["usage"];
  EXPECT_GT(u["prompt_tokens"].get<int>(), 5);
  EXPECT_GE(u["completion_tokens"].get<int>(), 1);
  EXPECT_LE(u["completion_tokens"].get<int>(), 6);
  EXPECT_EQ(u["total_tokens"], u["prompt_tokens"].get<int>() + u["completion_tokens"].get<int>());
  const std::string finish = r["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "length" || finish == "stop") << finish;

  httplib::Client c("127.0.0.1", port_);
  const json models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(json::parse(c.Get("/health")->body)["status"], "ok");
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
  EXPECT_NE(page->body.find("controller.abort()"), std::string::npos);  // the stop button
}

TEST_F(ServerTest, SameSeedSameTextAndMaxTokensGivesLength) {
  start();
  const json req = {{"prompt", "Once upon a time"}, {"max_tokens", 12}, {"seed", 7}, {"temperature", 1.3},
                    {"logit_bias", {{std::to_string(eos()), -100}}}};
  const json a = post_ok("/v1/completions", req), b = post_ok("/v1/completions", req);
  EXPECT_EQ(a["object"], "text_completion");
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
  EXPECT_EQ(a["usage"]["completion_tokens"], 12);
  EXPECT_EQ(a["choices"][0]["finish_reason"], "length");
}

TEST_F(ServerTest, StreamedTextIsTheSameAsUnstreamedAndEndsWithDone) {
  start();
  json req = {{"messages", kHello}, {"max_tokens", 16}, {"seed", 3}, {"logit_bias", {{std::to_string(eos()), -100}}}};
  const json whole = post_ok("/v1/chat/completions", req);
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto r = post("/v1/chat/completions", req);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  const auto ev = events(r->body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string text;
  std::string finish;
  json usage;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    const json c = json::parse(ev[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    if (c.contains("usage")) usage = c["usage"];
    if (c["choices"].empty()) continue;
    const json& ch = c["choices"][0];
    if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  EXPECT_EQ(json::parse(ev[0])["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 16);
  EXPECT_EQ(usage["prompt_tokens"], whole["usage"]["prompt_tokens"]);
  // The same prompt again: all of it but the last token comes from the slot's cache.
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], usage["prompt_tokens"].get<int>() - 1);
}

TEST_F(ServerTest, LogprobsAreNormalisedAndRankTheGreedyTokenFirst) {
  start();
  const json r = post_ok("/v1/chat/completions", {{"messages", kHello}, {"max_tokens", 8}, {"temperature", 0},
                                                  {"logprobs", true}, {"top_logprobs", 3},
                                                  {"logit_bias", {{std::to_string(eos()), -100}}}});
  const json& content = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 8u);
  for (const json& t : content) {
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    // Greedy: the sampled token is the most likely one.
    EXPECT_DOUBLE_EQ(t["logprob"].get<double>(), t["top_logprobs"][0]["logprob"].get<double>());
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(), t["top_logprobs"][1]["logprob"].get<double>());
    EXPECT_GE(t["top_logprobs"][1]["logprob"].get<double>(), t["top_logprobs"][2]["logprob"].get<double>());
    EXPECT_TRUE(t["bytes"].is_array());
  }
  const json c = post_ok("/v1/completions", {{"prompt", "abc"}, {"max_tokens", 4}, {"temperature", 0}, {"logprobs", 2},
                                             {"logit_bias", {{std::to_string(eos()), -100}}}});
  const json& lp = c["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"].size(), 4u);
  EXPECT_EQ(lp["token_logprobs"].size(), 4u);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(lp["text_offset"][0], 0);
}

TEST_F(ServerTest, StopStringEndsTheTextBeforeIt) {
  start();
  json req = {{"prompt", "The story"}, {"max_tokens", 40}, {"temperature", 0},
              {"logit_bias", {{std::to_string(eos()), -100}}}};
  const std::string full = post_ok("/v1/completions", req)["choices"][0]["text"];
  ASSERT_GE(full.size(), 6u) << full;
  // A stop string from the middle of the greedy text (ASCII, so no cut
  // inside a character).
  size_t at = full.size() / 2;
  while (at < full.size() && static_cast<unsigned char>(full[at]) >= 0x80) ++at;
  ASSERT_LT(at + 1, full.size());
  std::string stop = full.substr(at, 1);
  req["stop"] = json::array({stop, "never appears \x01"});
  const json r = post_ok("/v1/completions", req);
  EXPECT_EQ(r["choices"][0]["text"], full.substr(0, full.find(stop)));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
}

TEST_F(ServerTest, BadRequestsGet4xxInOpenAIsShapeAndTheServerKeepsServing) {
  server::ServerOptions o;
  o.max_body_bytes = 4096;
  o.context = 64;
  start(o);
  httplib::Client c("127.0.0.1", port_);
  auto expect = [&](const std::string& path, const std::string& body, int status, const std::string& param) {
    auto r = c.Post(path.c_str(), body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << body << " -> " << r->body;
    const json e = json::parse(r->body);
    ASSERT_TRUE(e.contains("error")) << r->body;
    EXPECT_FALSE(e["error"]["message"].get<std::string>().empty());
    EXPECT_TRUE(e["error"].contains("type"));
    if (!param.empty()) {
      EXPECT_EQ(e["error"]["param"], param) << r->body;
    }
  };
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  expect("/v1/chat/completions", "{not json", 400, "");
  expect("/v1/chat/completions", "[1,2]", 400, "");
  expect("/v1/chat/completions", "{}", 400, "messages");
  expect("/v1/chat/completions", R"({"messages":"hi"})", 400, "messages");
  expect("/v1/chat/completions", R"({"messages":[{"role":"wizard","content":"hi"}]})", 400, "messages[0].role");
  expect("/v1/chat/completions", "{" + msgs + R"(,"temperature":"hot"})", 400, "temperature");
  expect("/v1/chat/completions", "{" + msgs + R"(,"temperature":7})", 400, "temperature");
  expect("/v1/chat/completions", "{" + msgs + R"(,"temperature":1e999})", 400, "");  // beyond a double (fuzz)
  expect("/v1/chat/completions", "{" + msgs + R"(,"n":2})", 400, "n");
  expect("/v1/chat/completions", "{" + msgs + R"(,"max_tokens":0})", 400, "max_tokens");
  expect("/v1/chat/completions", "{" + msgs + R"(,"max_tokens":1000000000})", 400, "max_tokens");
  expect("/v1/chat/completions", "{" + msgs + R"(,"logit_bias":{"nope":1}})", 400, "logit_bias");
  expect("/v1/chat/completions", "{" + msgs + R"(,"logit_bias":{"99999999":1}})", 400, "logit_bias");
  expect("/v1/chat/completions", "{" + msgs + R"(,"stop":[""]})", 400, "stop");
  expect("/v1/chat/completions", "{" + msgs + R"(,"top_logprobs":3})", 400, "top_logprobs");
  expect("/v1/chat/completions", "{" + msgs + R"(,"tools":[{"type":"function"}]})", 400, "tools[0].function");
  // The demo template renders no tool calls.
  expect("/v1/chat/completions", "{" + msgs + R"(,"tools":[{"type":"function","function":{"name":"f"}}]})", 400, "tools");
  expect("/v1/chat/completions", "{" + msgs + R"(,"tool_choice":"required"})", 400, "tool_choice");
  expect("/v1/chat/completions", "{" + msgs + R"(,"response_format":{"type":"xml"}})", 400, "response_format.type");
  expect("/v1/chat/completions",
         "{" + msgs + R"(,"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"string","pattern":"x"}}}})",
         400, "response_format.json_schema.schema");
  expect("/v1/chat/completions", "{" + msgs + R"(,"model":"gpt-4"})", 404, "model");
  expect("/v1/chat/completions", "{" + msgs + R"(,"save_session":"x"})", 400, "save_session");
  expect("/v1/completions", R"({"prompt":")" + std::string(3000, 'a') + R"("})", 400, "prompt");  // beyond the context
  expect("/v1/completions", R"({"prompt":[1,-5]})", 400, "prompt[1]");
  expect("/v1/completions", R"({"prompt":")" + std::string(5000, 'a') + R"("})", 413, "");    // beyond the body limit
  expect("/v1/nothing", "{}", 404, "");
  // Fields OpenAI has and we do not use are ignored; the server still answers.
  auto r = c.Post("/v1/chat/completions", "{" + msgs + R"(,"max_tokens":3,"user":"me","metadata":{"a":1}})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(metric("moeflux_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"}"), "1");
}

// Streams a long answer (end of sequence banned) and reads until `keep`
// returns false, which drops the connection.
void stream_until(int port, const json& body, const std::function<bool(const std::string&)>& keep) {
  httplib::Client c("127.0.0.1", port);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) { return keep(std::string(data, n)); };
  c.send(req);
}

TEST_F(ServerTest, AClientThatDisconnectsCancelsItsGeneration) {
  server::ServerOptions o;
  o.context = 4096;
  start(o);
  const json body = {{"prompt", "go"}, {"max_tokens", 4000}, {"stream", true}, {"temperature", 1}, {"seed", 1},
                     {"logit_bias", {{std::to_string(eos()), -100}}}};
  int chunks = 0;
  stream_until(port_, body, [&](const std::string&) { return ++chunks < 3; });
  // The generation ends soon after the connection is gone, far short of 4000 tokens.
  for (int i = 0; i < 200 && metric("moeflux_requests_cancelled_total") != "1"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(metric("moeflux_requests_cancelled_total"), "1");
  EXPECT_LT(std::stoi(metric("moeflux_generated_tokens_total")), 1000);
  EXPECT_EQ(metric("moeflux_slots_busy"), "0");
  post_ok("/v1/completions", {{"prompt", "still serving"}, {"max_tokens", 2}});
}

TEST_F(ServerTest, AClientThatHangsUpOnAnUnstreamedRequestCancelsIt) {
  server::ServerOptions o;
  o.context = 4096;
  start(o);
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(0, 300000);  // gives up after 0.3 s and closes the connection
  const json body = {{"prompt", "go"}, {"max_tokens", 4000}, {"temperature", 1}, {"seed", 1},
                     {"logit_bias", {{std::to_string(eos()), -100}}}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  EXPECT_FALSE(r);  // timed out
  for (int i = 0; i < 200 && metric("moeflux_requests_cancelled_total") != "1"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(metric("moeflux_requests_cancelled_total"), "1");
  EXPECT_LT(std::stoi(metric("moeflux_generated_tokens_total")), 1500);
  post_ok("/v1/completions", {{"prompt", "still serving"}, {"max_tokens", 2}});
}

TEST_F(ServerTest, BeyondTheQueueRequestsGet503WithRetryAfter) {
  server::ServerOptions o;
  o.slots = 1;
  o.max_queue = 1;
  o.context = 4096;
  start(o);
  std::atomic<bool> streaming{false}, release{false};
  std::thread long_one([&] {
    stream_until(port_, {{"prompt", "go"}, {"max_tokens", 4000}, {"stream", true}, {"logit_bias", {{std::to_string(eos()), -100}}}},
                 [&](const std::string&) {
                   streaming = true;
                   return !release.load();
                 });
  });
  while (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // One waits in the queue...
  std::thread queued([&] { post_ok("/v1/completions", {{"prompt", "queued"}, {"max_tokens", 2}}); });
  for (int i = 0; i < 200 && metric("moeflux_queue_length") != "1"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(metric("moeflux_queue_length"), "1");
  // ...the next is refused.
  auto r = post("/v1/completions", {{"prompt", "refused"}, {"max_tokens", 2}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
  release = true;
  long_one.join();
  queued.join();  // the queued one ran once the slot was free
}

TEST_F(ServerTest, ConcurrentRequestsGiveTheSequentialTokens) {
  server::ServerOptions o;
  o.slots = 3;
  start(o);
  std::vector<json> reqs;
  for (int i = 0; i < 3; ++i)
    reqs.push_back({{"prompt", "Request number " + std::to_string(i)}, {"max_tokens", 10}, {"seed", 100 + i},
                    {"temperature", 1.2}, {"logprobs", 1}, {"logit_bias", {{std::to_string(eos()), -100}}}});
  std::vector<json> sequential;
  for (const json& q : reqs) sequential.push_back(post_ok("/v1/completions", q)["choices"][0]["logprobs"]["tokens"]);
  for (int round = 0; round < 3; ++round) {
    std::vector<json> got(3);
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i)
      ts.emplace_back([&, i] { got[size_t(i)] = post_ok("/v1/completions", reqs[size_t(i)])["choices"][0]["logprobs"]["tokens"]; });
    for (auto& t : ts) t.join();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(got[size_t(i)], sequential[size_t(i)]) << "request " << i << " round " << round;
  }
}

TEST_F(ServerTest, AnIdleSlotsCacheMakesRoomWhenTheStateBudgetIsShort) {
  // One KV page (64 positions of every layer), measured.
  Session probe(*engine_);
  const int32_t one = 1;
  probe.step(std::span<const int32_t>(&one, 1));
  const uint64_t page = probe.state_bytes();
  EngineOptions eo;
  eo.threads = 2;
  eo.state_budget = 3 * page;
  server::ServerModel m = model();
  m.engine = Engine::load(dir_->file("m"), eo);
  server::ServerOptions o;
  o.slots = 2;
  o.port = 0;
  server_ = std::make_unique<server::Server>(m, o);
  port_ = server_->start();
  std::vector<int> a(90, 7), b(90, 9), huge(300, 5);  // two pages each; five pages
  json r1 = post_ok("/v1/completions", {{"prompt", a}, {"max_tokens", 2}});
  EXPECT_EQ(std::stoull(metric("moeflux_state_bytes")), 2 * page);  // kept for reuse
  // Two more pages do not fit beside the first request's cache: it goes.
  json r2 = post_ok("/v1/completions", {{"prompt", b}, {"max_tokens", 2}});
  EXPECT_EQ(std::stoull(metric("moeflux_state_bytes")), 2 * page);
  // Beyond the whole budget: 503, and the server goes on.
  auto r = post("/v1/completions", {{"prompt", huge}, {"max_tokens", 2}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_FALSE(r->get_header_value("Retry-After").empty());
  EXPECT_NE(r->body.find("state budget"), std::string::npos) << r->body;
  post_ok("/v1/completions", {{"prompt", a}, {"max_tokens", 2}});
}

TEST_F(ServerTest, ThePrefixCacheResumesAPrefixNoSlotHoldsAnyMore) {
  std::vector<int> shared, other;
  for (int i = 0; i < 100; ++i) shared.push_back(10 + (i * 7) % 200), other.push_back(300 + (i * 5) % 200);
  auto with = [&](int tail) {
    auto v = shared;
    v.insert(v.end(), {tail, tail + 1});
    return v;
  };
  const json ban = {{std::to_string(eos()), -100}};
  auto ask = [&](const std::vector<int>& prompt) {
    return post_ok("/v1/completions", {{"prompt", prompt}, {"max_tokens", 6}, {"temperature", 0}, {"logprobs", 0},
                                       {"logit_bias", ban}});
  };
  server::ServerOptions o;
  o.slots = 1;
  o.prefix_cache_bytes = 64 << 20;
  o.prefix_cache_min_tokens = 16;
  start(o);
  ask(with(1));
  ask(other);  // the one slot now holds this
  const json c = ask(with(2));
  EXPECT_EQ(c["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
  EXPECT_EQ(metric("moeflux_prefix_cache_hits_total"), "1");
  EXPECT_EQ(metric("moeflux_prompt_tokens_cached_total"), "100");
  // The same tokens as computed from scratch.
  server_.reset();
  start();
  const json fresh = ask(with(2));
  EXPECT_EQ(fresh["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(c["choices"][0]["logprobs"]["tokens"], fresh["choices"][0]["logprobs"]["tokens"]);

  // A budget for one entry: the older one goes, and nothing is resumed.
  Session probe(*engine_);
  probe.step(std::vector<int32_t>(105, 3));
  o.prefix_cache_bytes = probe.save_to_bytes().size() + 4096;
  server_.reset();
  start(o);
  ask(with(1));
  ask(other);
  const json d = ask(with(2));
  EXPECT_EQ(d["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(metric("moeflux_prefix_cache_hits_total"), "0");
  EXPECT_GE(std::stoi(metric("moeflux_prefix_cache_evictions_total")), 1);
}

TEST_F(ServerTest, AConversationResumesFromTheSlotsCachedPrefix) {
  start();
  json msgs = kHello;
  const json a = post_ok("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 5}, {"seed", 1}});
  msgs.push_back({{"role", "assistant"}, {"content", a["choices"][0]["message"]["content"]}});
  msgs.push_back({{"role", "user"}, {"content", "And then?"}});
  const json b = post_ok("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 5}, {"seed", 1}});
  EXPECT_GE(b["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), a["usage"]["prompt_tokens"].get<int>() - 1);
}

TEST_F(ServerTest, SessionsAreSavedAndLoadedThroughTheApi) {
  test::TempDir sessions;
  server::ServerOptions o;
  o.session_dir = sessions.path();
  o.slots = 2;
  start(o);
  const json a = post_ok("/v1/completions", {{"prompt", "A long shared beginning"}, {"max_tokens", 4}, {"seed", 2},
                                             {"save_session", "conv1"}});
  ASSERT_TRUE(std::filesystem::exists(sessions.file("conv1.mfsession")));
  // A fresh server: nothing cached, except what the file brings.
  server_.reset();
  start(o);
  const std::string prompt = "A long shared beginning" + a["choices"][0]["text"].get<std::string>() + " more";
  const json b = post_ok("/v1/completions", {{"prompt", prompt}, {"max_tokens", 2}, {"load_session", "conv1"}});
  EXPECT_GT(b["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 3);
  auto missing = post("/v1/completions", {{"prompt", "x"}, {"load_session", "nope"}});
  EXPECT_EQ(missing->status, 404) << missing->body;
  test::write_file(sessions.file("bad.mfsession"), "not a session at all");
  auto bad = post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}, {"load_session", "bad"}});
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_NE(bad->body.find("not a moeflux session file"), std::string::npos) << bad->body;
  auto traversal = post("/v1/completions", {{"prompt", "x"}, {"save_session", "../evil"}});
  EXPECT_EQ(traversal->status, 400) << traversal->body;
}

}  // namespace

namespace {

// A JSON schema and whether a parsed document fits it (the few keywords used here).
const json kAnswerSchema = json::parse(R"({"type": "object", "properties": {
    "ok": {"type": "boolean"}, "n": {"type": "integer"}, "tag": {"enum": ["a", "b"]}},
    "required": ["ok", "n", "tag"], "additionalProperties": false})");

bool fits_answer_schema(const json& d) {
  return d.is_object() && d.size() == 3 && d["ok"].is_boolean() && d["n"].is_number_integer() &&
         (d["tag"] == "a" || d["tag"] == "b");
}

}  // namespace

TEST_F(ServerTest, ResponseFormatJsonSchemaAlwaysGivesAValidDocument) {
  start();
  // A random model: whatever it prefers, the mask leaves only tokens that
  // keep the document valid, and the end only once it is complete.
  for (int seed = 1; seed <= 4; ++seed) {
    const json req = {{"messages", kHello},
                      {"max_tokens", 400},
                      {"seed", seed},
                      {"temperature", 0.7},
                      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "answer"}, {"schema", kAnswerSchema}}}}}};
    const json r = post_ok("/v1/chat/completions", req);
    ASSERT_EQ(r["choices"][0]["finish_reason"], "stop") << r.dump();
    const std::string text = r["choices"][0]["message"]["content"];
    json doc;
    ASSERT_NO_THROW(doc = json::parse(text)) << text;
    EXPECT_TRUE(fits_answer_schema(doc)) << text;
  }
  // json_object: any object, on /v1/completions too; streamed the same.
  const json req = {{"prompt", "Data:"}, {"max_tokens", 400}, {"seed", 3}, {"response_format", {{"type", "json_object"}}}};
  const json r = post_ok("/v1/completions", req);
  const std::string text = r["choices"][0]["text"];
  if (r["choices"][0]["finish_reason"] == "stop") {
    json doc;
    ASSERT_NO_THROW(doc = json::parse(text)) << text;
    EXPECT_TRUE(doc.is_object());
  }
  json sreq = req;
  sreq["stream"] = true;
  auto s = post("/v1/completions", sreq);
  ASSERT_TRUE(s);
  std::string streamed;
  for (const std::string& e : events(s->body))
    if (e != "[DONE]") streamed += json::parse(e)["choices"][0].value("text", "");
  EXPECT_EQ(streamed, text);
}

TEST_F(ServerTest, ToolsReachTheTemplateOfAModelThatHasThem) {
  const std::string qwen3 = std::string(MOEFLUX_SHARED_DIR) + "/tokenizers/qwen3/tokenizer_config.json";
  if (!std::filesystem::exists(qwen3)) GTEST_SKIP() << qwen3 << " is absent";
  server::ServerModel m = model();
  m.chat_template = *ChatTemplate::from_tokenizer_config(qwen3);
  server::ServerOptions o;
  o.port = 0;
  server_ = std::make_unique<server::Server>(std::move(m), o);
  port_ = server_->start();
  const json tools = json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  const json plain = post_ok("/v1/chat/completions", {{"messages", kHello}, {"max_tokens", 4}, {"seed", 1}});
  const json with = post_ok("/v1/chat/completions", {{"messages", kHello}, {"max_tokens", 4}, {"seed", 1}, {"tools", tools}});
  // The tool list is in the prompt.
  EXPECT_GT(with["usage"]["prompt_tokens"].get<int>(), plain["usage"]["prompt_tokens"].get<int>() + 20);
  // A random model writes no call: the answer is content, as with no tools.
  EXPECT_TRUE(with["choices"][0]["message"]["content"].is_string());
  EXPECT_FALSE(with["choices"][0]["message"].contains("tool_calls"));
  // A history with a call and its result renders (the template's own syntax).
  json history = kHello;
  history.push_back({{"role", "assistant"},
                     {"content", ""},
                     {"tool_calls", json::array({{{"id", "call_1"}, {"type", "function"},
                                                  {"function", {{"name", "get_weather"}, {"arguments", R"({"city": "Paris"})"}}}}})}});
  history.push_back({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "20 C"}});
  post_ok("/v1/chat/completions", {{"messages", history}, {"max_tokens", 2}, {"tools", tools}});
}

namespace {

// The tools of the tool_choice tests: bounded arguments, so that a random
// model's call always ends within max_tokens.
const json kForcedTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
    "properties": {"city": {"type": "string", "maxLength": 10}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"]}}},
  {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}, "required": ["a", "b"]}}}])");

bool valid_forced_call(const json& call) {
  const json args = json::parse(call["function"]["arguments"].get<std::string>(), nullptr, false);
  if (!args.is_object()) return false;
  const std::string name = call["function"]["name"];
  if (name == "get_weather")
    return args.size() == 2 && args["city"].is_string() && args["city"].get<std::string>().size() <= 40 &&
           (args["unit"] == "c" || args["unit"] == "f");
  if (name == "add") return args.size() == 2 && args["a"].is_number_integer() && args["b"].is_boolean();
  return false;
}

}  // namespace

// A random model, so without the constraint it writes no call (see the
// test above): every answer here is a call because the output is masked.
// A template in the manner of Llama 3.1's: a call is the whole message,
// {"name": N, "parameters": {...}} (the llama3 folder of shared/ has
// Llama 3's, which renders no tools).
const char* kLlama31StyleTemplate = R"jinja({{- bos_token }}
{%- if tools %}<|start_header_id|>system<|end_header_id|>

Answer with a JSON function call {"name": function name, "parameters": arguments} to one of:
{% for t in tools %}{{ t | tojson }}
{% endfor %}<|eot_id|>{%- endif %}
{%- for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>

{% if m.tool_calls %}{% for c in m.tool_calls %}{{ '{"name": "' + c.function.name + '", "parameters": ' + c.function.arguments + '}' }}{% endfor %}{% else %}{{ m.content }}{% endif %}<|eot_id|>
{%- endfor %}
{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %})jinja";

TEST_F(ServerTest, ToolChoiceRequiredAndNamedAlwaysCall) {
  const std::string qwen3 = std::string(MOEFLUX_SHARED_DIR) + "/tokenizers/qwen3/tokenizer_config.json";
  if (!std::filesystem::exists(qwen3)) GTEST_SKIP() << qwen3 << " is absent";
  for (const char* family : {"qwen3", "llama3.1-style"}) {
    SCOPED_TRACE(family);
    server::ServerModel m = model();
    m.chat_template = family == std::string("qwen3") ? *ChatTemplate::from_tokenizer_config(qwen3)
                                                     : ChatTemplate::parse(kLlama31StyleTemplate);
    ASSERT_EQ(detect_tool_call_format(m.chat_template),
              family == std::string("qwen3") ? ToolCallFormat::Hermes : ToolCallFormat::Llama3Json);
    server::ServerOptions o;
    o.port = 0;
    server_.reset();
    server_ = std::make_unique<server::Server>(std::move(m), o);
    port_ = server_->start();
    std::set<std::string> names;
    for (int seed = 1; seed <= 4; ++seed) {
      const json r = post_ok("/v1/chat/completions", {{"messages", kHello}, {"max_tokens", 300}, {"seed", seed},
                                                      {"tools", kForcedTools}, {"tool_choice", "required"}});
      const json& c = r["choices"][0];
      ASSERT_EQ(c["finish_reason"], "tool_calls") << r.dump();
      ASSERT_EQ(c["message"]["tool_calls"].size(), 1u) << r.dump();
      EXPECT_TRUE(valid_forced_call(c["message"]["tool_calls"][0])) << r.dump();
      names.insert(c["message"]["tool_calls"][0]["function"]["name"].get<std::string>());
    }
    // A named function: that one, streamed too.
    const json named = {{"type", "function"}, {"function", {{"name", "add"}}}};
    for (int seed = 1; seed <= 2; ++seed) {
      const json r = post_ok("/v1/chat/completions", {{"messages", kHello}, {"max_tokens", 300}, {"seed", seed},
                                                      {"tools", kForcedTools}, {"tool_choice", named}});
      const json& c = r["choices"][0];
      ASSERT_EQ(c["finish_reason"], "tool_calls") << r.dump();
      EXPECT_EQ(c["message"]["tool_calls"][0]["function"]["name"], "add") << r.dump();
      EXPECT_TRUE(valid_forced_call(c["message"]["tool_calls"][0])) << r.dump();
    }
    auto s = post("/v1/chat/completions", {{"messages", kHello}, {"max_tokens", 300}, {"seed", 3}, {"stream", true},
                                          {"tools", kForcedTools}, {"tool_choice", named}});
    ASSERT_TRUE(s);
    std::string finish;
    json call;
    for (const std::string& e : events(s->body)) {
      if (e == "[DONE]") continue;
      const json j = json::parse(e);
      for (const json& ch : j["choices"]) {
        if (ch["delta"].contains("tool_calls")) call = ch["delta"]["tool_calls"][0];
        if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
      }
    }
    EXPECT_EQ(finish, "tool_calls") << s->body;
    EXPECT_EQ(call["function"]["name"], "add") << s->body;
    EXPECT_TRUE(valid_forced_call(call)) << s->body;
  }
}

TEST_F(ServerTest, ToolChoiceThatCannotBeMetIsRefused) {
  start();
  const json named = {{"type", "function"}, {"function", {{"name", "nope"}}}};
  auto r = post("/v1/chat/completions", {{"messages", kHello}, {"tools", kForcedTools}, {"tool_choice", named}});
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("not one of the 'tools'"), std::string::npos) << r->body;
  r = post("/v1/chat/completions", {{"messages", kHello}, {"tool_choice", {{"type", "function"}}}});
  EXPECT_EQ(r->status, 400) << r->body;
  r = post("/v1/chat/completions", {{"messages", kHello}, {"tools", kForcedTools}, {"tool_choice", "required"},
                                    {"response_format", {{"type", "json_object"}}}});
  EXPECT_EQ(r->status, 400) << r->body;
  const std::string deepseek = std::string(MOEFLUX_SHARED_DIR) + "/tokenizers/deepseek_v3/tokenizer_config.json";
  if (!std::filesystem::exists(deepseek)) GTEST_SKIP() << deepseek << " is absent";
  server::ServerModel m = model();
  m.chat_template = *ChatTemplate::from_tokenizer_config(deepseek);
  server::ServerOptions o;
  o.port = 0;
  server_.reset();
  server_ = std::make_unique<server::Server>(std::move(m), o);
  port_ = server_->start();
  r = post("/v1/chat/completions", {{"messages", kHello}, {"tools", kForcedTools}, {"tool_choice", "required"}});
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("deepseek"), std::string::npos) << r->body;
  // "auto" still works there.
  post_ok("/v1/chat/completions", {{"messages", kHello}, {"max_tokens", 2}, {"tools", kForcedTools}});
}
