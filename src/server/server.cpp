#include "server/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "core/error.h"
#include "model/model_spec.h"
#include "server/api_error.h"
#include "server/api_request.h"
#include "server/chat_page.h"
#include "server/connection_probe.h"
#include "server/constrained_output.h"
#include "server/generation.h"
#include "server/metrics.h"
#include "server/prefix_cache.h"
#include "server/slot_pool.h"

namespace moeflux::server {

namespace {

using json = nlohmann::ordered_json;

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string_view trim_view(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
  res.set_content(dump(error_body(e)), "application/json");
}

const char* finish_reason(const std::string& stop_reason) {
  if (stop_reason == "stop_token" || stop_reason == "stop_string") return "stop";
  if (stop_reason == "max_tokens" || stop_reason == "context_full") return "length";
  return "stop";
}

// A request checked and tokenized, before it waits for a slot.
struct Prepared {
  CompletionRequest req;
  std::vector<int32_t> prompt;
  int max_tokens = 0;
  std::string id;
};

}  // namespace

struct Server::Impl {
  ServerModel model;
  ServerOptions opt;
  std::unique_ptr<SlotPool> pool;
  Metrics metrics;
  std::unique_ptr<PrefixCache> prefix;
  DecodeBatcher batcher;
  httplib::Server http;
  std::thread thread;
  std::atomic<uint64_t> next_id{1};
  std::atomic<int> bound_port{0};
  std::atomic<bool> stopping{false};  // ends running generations when the server stops
  // How the chat template writes tool calls (found by rendering one).
  ToolCallFormat tool_format = ToolCallFormat::None;
  // The vocabulary for JSON-constrained output, made on first use.
  std::shared_ptr<const json_constraint::MaskVocab> json_vocab;
  std::mutex json_vocab_mutex;

  Impl(ServerModel m, ServerOptions o) : model(std::move(m)), opt(std::move(o)) {
    if (!model.engine) fail("the server needs a loaded engine");
    if (opt.slots < 1) fail("--parallel must be at least 1, got {}", opt.slots);
    if (opt.max_queue < 0) fail("--max-queue must be >= 0, got {}", opt.max_queue);
    if (opt.context < 0 || opt.context > model.engine->spec().max_positions)
      fail("--context {} is outside [0, {}] (the model's max_position_embeddings; 0 uses all of it)", opt.context,
           model.engine->spec().max_positions);
    if (!opt.session_dir.empty() && !std::filesystem::is_directory(opt.session_dir))
      fail("--session-dir {}: not a directory", opt.session_dir);
    pool = std::make_unique<SlotPool>(model.engine, opt.slots, opt.max_queue, opt.context);
    prefix = std::make_unique<PrefixCache>(opt.prefix_cache_bytes, opt.prefix_cache_min_tokens);
    tool_format = detect_tool_call_format(model.chat_template);
    routes();
  }

  int vocab() const { return model.engine->spec().vocab; }

  std::string session_path(const std::string& name, const char* field) const {
    if (opt.session_dir.empty())
      throw ApiError(400, fmt::format("'{}' needs the server to be started with --session-dir", field), field);
    return (std::filesystem::path(opt.session_dir) / (name + ".mfsession")).string();
  }

  // Text of a token for logprobs: its bytes (a piece of a character shows
  // as U+FFFD when the JSON is written).
  std::string piece(int32_t id) const {
    std::string b = model.tokenizer.token_bytes(id);
    return b.empty() ? model.tokenizer.token_text(id) : b;
  }
  static json bytes_of(const std::string& s) {
    json a = json::array();
    for (unsigned char c : s) a.push_back(int(c));
    return a;
  }
  json chat_logprob(const TokenLogprob& lp) const {
    json top = json::array();
    for (auto [id, l] : lp.top) top.push_back({{"token", piece(id)}, {"logprob", l}, {"bytes", bytes_of(piece(id))}});
    return {{"token", piece(lp.id)}, {"logprob", lp.logprob}, {"bytes", bytes_of(piece(lp.id))}, {"top_logprobs", top}};
  }
  // The legacy completions shape: parallel lists.
  json completion_logprobs(const std::vector<TokenLogprob>& lps, size_t& offset) const {
    json o = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
    for (const TokenLogprob& lp : lps) {
      const std::string p = piece(lp.id);
      o["tokens"].push_back(p);
      o["token_logprobs"].push_back(lp.logprob);
      json top = json::object();
      for (auto [id, l] : lp.top) top[piece(id)] = l;
      o["top_logprobs"].push_back(top);
      o["text_offset"].push_back(offset);
      offset += p.size();
    }
    return o;
  }

  Prepared prepare(const std::string& body, bool chat) {
    Prepared p;
    p.req = parse_completion_request(body, chat, vocab());
    const CompletionRequest& r = p.req;
    if (!r.model.empty() && r.model != model.name)
      throw ApiError(404, fmt::format("the model '{}' does not exist; this server serves '{}'", r.model, model.name),
                     "model", "invalid_request_error", "model_not_found");
    if (chat) {
      std::string text;
      if (!r.tools.is_null() && tool_format == ToolCallFormat::None)
        throw ApiError(400, "'tools' given, but this model's chat template does not render tool calls", "tools");
      try {
        ChatTemplateOptions o;
        o.tools = r.tools;
        text = model.chat_template.render(r.messages, o);
      } catch (const Error& e) {
        throw ApiError(400, fmt::format("the chat template refused the messages: {}", e.what()), "messages");
      }
      p.prompt = model.tokenizer.encode(text, false);
    } else {
      p.prompt = r.prompt_tokens ? *r.prompt_tokens : model.tokenizer.encode(r.prompt, true);
    }
    const char* prompt_field = chat ? "messages" : "prompt";
    if (p.prompt.empty()) throw ApiError(400, "the prompt is empty after tokenization", prompt_field);
    const int ctx = pool->context();
    if (int64_t(p.prompt.size()) >= ctx)
      throw ApiError(400, fmt::format("the prompt is {} tokens; the context holds {} (one more is needed to answer)",
                                      p.prompt.size(), ctx),
                     prompt_field, "invalid_request_error", "context_length_exceeded");
    const int room = ctx - int(p.prompt.size());
    if (r.max_tokens && *r.max_tokens > room)
      throw ApiError(400, fmt::format("max_tokens is {} but the context of {} positions has room for {} after the "
                                      "prompt of {} tokens", *r.max_tokens, ctx, room, p.prompt.size()),
                     "max_tokens", "invalid_request_error", "context_length_exceeded");
    p.max_tokens = r.max_tokens.value_or(room);
    if (!p.req.seeded) p.req.sampling.seed = std::random_device{}() * 0x100000001ull + std::random_device{}();
    if (!r.load_session.empty()) {
      const std::string path = session_path(r.load_session, "load_session");
      if (!std::filesystem::exists(path))
        throw ApiError(404, fmt::format("no saved session named '{}'", r.load_session), "load_session");
    }
    if (!r.save_session.empty()) session_path(r.save_session, "save_session");
    p.id = fmt::format("{}-{:x}{:06x}", chat ? "chatcmpl" : "cmpl", unix_time(), next_id++);
    return p;
  }

  // The JSON mask of a request with response_format json_object or
  // json_schema, or null.
  std::unique_ptr<LogitConstraint> constraint_for(const Prepared& p) {
    if (!p.req.json_grammar) return nullptr;
    if (model.stop_tokens.empty())
      throw ApiError(400, "'response_format' needs the model to have an end-of-sequence token", "response_format");
    std::shared_ptr<const json_constraint::MaskVocab> v;
    {
      std::lock_guard<std::mutex> lock(json_vocab_mutex);
      if (!json_vocab) json_vocab = mask_vocab(model.tokenizer);
      v = json_vocab;
    }
    return std::make_unique<JsonConstraint>(p.req.json_grammar, v, model.tokenizer, model.stop_tokens);
  }

  // Runs a prepared request on a slot: loads a saved session when asked,
  // resumes the longest cached prefix, generates, keeps the slot's cache in
  // step with its session, saves when asked. `cached` gets the prompt
  // tokens that were not computed again.
  GenerationStats run(Slot& s, const Prepared& p, const GenerationHooks& hooks, size_t& cached) {
    const CompletionRequest& r = p.req;
    try {
      if (!r.load_session.empty()) {
        const std::string user = s.session.load(session_path(r.load_session, "load_session"));
        s.cached.clear();
        try {
          const json saved = json::parse(user);
          for (const auto& t : saved.at("tokens")) s.cached.push_back(t.get<int32_t>());
        } catch (const std::exception&) {
          s.cached.clear();
        }
        if (int(s.cached.size()) != s.session.position()) {
          s.session.reset();
          s.cached.clear();
          throw ApiError(400, fmt::format("saved session '{}' was not written by moeflux serve", r.load_session),
                         "load_session");
        }
      }
      Sampler sampler(p.req.sampling, vocab());
      StopConditions stop{r.stop, model.stop_tokens, p.max_tokens};
      bool produced = false;
      GenerationHooks h = hooks;
      h.cancelled = [&] { return stopping.load() || (hooks.cancelled && hooks.cancelled()); };
      h.on_token = [&](const TokenLogprob& lp) {
        produced = true;
        if (hooks.on_token) hooks.on_token(lp);
      };
      if (opt.batch_decode && opt.slots > 1)
        h.decode_step = [this](Session& session, int32_t token) { return batcher.step(session, token); };
      if (r.load_session.empty()) {
        // Resume from the prefix cache when it shares more than the slot.
        try {
          prefix->restore(s.session, p.prompt, common_prefix(s.cached, p.prompt), s.cached);
        } catch (const Error&) {
          // Does not fit the state budget now: computing the prompt will say so or succeed.
        }
      }
      GenerationStats st;
      for (int attempt = 0;; ++attempt) {
        cached = resume_prefix(s, p.prompt);
        const std::span<const int32_t> fresh = std::span<const int32_t>(p.prompt).subspan(cached);
        try {
          st = generate(s.session, model.tokenizer, fresh, sampler, stop, h);
          break;
        } catch (const Error& e) {
          // Out of state budget before any token: the idle slots' cached
          // prefixes go, and the request runs again.
          if (e.kind() != ErrorKind::Capacity || produced || attempt > 0 || pool->evict_idle() == 0) throw;
        }
      }
      s.cached.assign(p.prompt.begin(), p.prompt.end());
      if (!st.tokens.empty()) s.cached.insert(s.cached.end(), st.tokens.begin(), st.tokens.end() - 1);
      if (int(s.cached.size()) != s.session.position())
        fail_as(ErrorKind::Internal, "slot cache of {} tokens but session position {}", s.cached.size(),
                s.session.position());
      prefix->put(s.session, s.cached);
      if (!r.save_session.empty())
        s.session.save(session_path(r.save_session, "save_session"), dump(json{{"tokens", s.cached}}));
      metrics.generation_done(int(p.prompt.size()), int(cached), st.generated_tokens, st.prefill_s, st.decode_s);
      if (st.stop_reason == "interrupted") metrics.cancelled();
      return st;
    } catch (...) {
      s.session.reset();
      s.cached.clear();
      throw;
    }
  }

  json usage(const Prepared& p, const GenerationStats& st, size_t cached) const {
    return {{"prompt_tokens", p.prompt.size()},
            {"completion_tokens", st.generated_tokens},
            {"total_tokens", p.prompt.size() + size_t(st.generated_tokens)},
            {"prompt_tokens_details", {{"cached_tokens", cached}}}};
  }

  bool is_stop_token(int32_t id) const {
    return std::find(model.stop_tokens.begin(), model.stop_tokens.end(), id) != model.stop_tokens.end();
  }

  void respond(SlotPool::Lease& lease, const Prepared& p, const httplib::Request& req, httplib::Response& res) {
    const bool chat = p.req.chat;
    std::string text;
    std::vector<TokenLogprob> lps;
    GenerationHooks hooks;
    // A client that hangs up ends the generation; checked every 16 tokens
    // (a poll without waiting, cheap beside a decode step).
    const ConnectionProbe probe(req.remote_addr, req.remote_port, req.local_addr, req.local_port);
    int polls = 0;
    hooks.cancelled = [&] { return ++polls % 16 == 0 && !probe.connected(); };
    hooks.top_logprobs = p.req.logprobs;
    hooks.on_text = [&](const std::string& t) { text += t; };
    if (p.req.logprobs >= 0)
      hooks.on_token = [&](const TokenLogprob& lp) {
        if (!is_stop_token(lp.id)) lps.push_back(lp);
      };
    const auto constraint = constraint_for(p);
    hooks.constraint = constraint.get();
    size_t cached = 0;
    const GenerationStats st = run(lease.slot(), p, hooks, cached);
    json choice = {{"index", 0}};
    bool called = false;
    if (chat) {
      if (p.req.parse_tool_calls) {
        const AssistantOutput out = parse_assistant_output(tool_format, text);
        choice["message"] = assistant_message(out, p.id);
        called = !out.tool_calls.empty();
      } else {
        choice["message"] = {{"role", "assistant"}, {"content", text}};
      }
      json content = json::array();
      for (const auto& lp : lps) content.push_back(chat_logprob(lp));
      choice["logprobs"] = p.req.logprobs >= 0 ? json{{"content", content}} : json(nullptr);
    } else {
      choice["text"] = text;
      size_t offset = 0;
      choice["logprobs"] = p.req.logprobs >= 0 ? completion_logprobs(lps, offset) : json(nullptr);
    }
    choice["finish_reason"] = called ? "tool_calls" : finish_reason(st.stop_reason);
    json body = {{"id", p.id},
                 {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", unix_time()},
                 {"model", model.name},
                 {"system_fingerprint", "moeflux"},
                 {"choices", json::array({choice})},
                 {"usage", usage(p, st, cached)}};
    res.set_content(dump(body), "application/json");
  }

  // Server-sent events: one chunk per piece of text, then the finish
  // reason with usage, then [DONE]. A write that fails (the client went
  // away) cancels the generation after the current token.
  void stream(std::shared_ptr<SlotPool::Lease> lease, std::shared_ptr<Prepared> p, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [this, lease, p](size_t, httplib::DataSink& sink) {
      const bool chat = p->req.chat;
      bool gone = false;
      auto send = [&](const json& j) {
        const std::string line = "data: " + dump(j) + "\n\n";
        if (!gone && !sink.write(line.data(), line.size())) gone = true;
      };
      const int64_t created = unix_time();
      auto chunk = [&](json choice) {
        choice["index"] = 0;
        return json{{"id", p->id},
                    {"object", chat ? "chat.completion.chunk" : "text_completion"},
                    {"created", created},
                    {"model", model.name},
                    {"system_fingerprint", "moeflux"},
                    {"choices", json::array({choice})}};
      };
      std::vector<TokenLogprob> lps;
      size_t offset = 0;
      auto text_choice = [&](const std::string& t) {
        json c;
        if (chat) {
          c["delta"] = {{"content", t}};
          json content = json::array();
          for (const auto& lp : lps) content.push_back(chat_logprob(lp));
          c["logprobs"] = p->req.logprobs >= 0 ? json{{"content", content}} : json(nullptr);
        } else {
          c["text"] = t;
          c["logprobs"] = p->req.logprobs >= 0 ? completion_logprobs(lps, offset) : json(nullptr);
        }
        c["finish_reason"] = nullptr;
        lps.clear();
        return c;
      };
      if (chat) send(chunk({{"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}}));
      GenerationHooks hooks;
      hooks.top_logprobs = p->req.logprobs;
      // With tools, text that may be the start of a call (or of reasoning)
      // is held back until it is clear; the calls go out as one delta.
      const bool tools = chat && p->req.parse_tool_calls;
      std::string full;
      size_t sent = 0;
      hooks.on_text = [&](const std::string& t) {
        if (!tools) {
          send(chunk(text_choice(t)));
          return;
        }
        full += t;
        const size_t ready = streamable_prefix(tool_format, full);
        if (ready > sent) {
          send(chunk(text_choice(full.substr(sent, ready - sent))));
          sent = ready;
        }
      };
      if (p->req.logprobs >= 0)
        hooks.on_token = [&](const TokenLogprob& lp) {
          if (!is_stop_token(lp.id)) lps.push_back(lp);
        };
      hooks.cancelled = [&] { return gone; };
      try {
        size_t cached = 0;
        const auto constraint = constraint_for(*p);
        hooks.constraint = constraint.get();
        const GenerationStats st = run(lease->slot(), *p, hooks, cached);
        bool called = false;
        if (tools) {
          const AssistantOutput out = parse_assistant_output(tool_format, full);
          // What was held back: the rest of the content, reasoning, calls.
          const std::string streamed(trim_view(std::string_view(full).substr(0, sent)));
          if (out.content.size() > streamed.size() && out.content.compare(0, streamed.size(), streamed) == 0)
            send(chunk(text_choice(out.content.substr(streamed.size()))));
          if (!out.reasoning.empty())
            send(chunk({{"delta", {{"reasoning_content", out.reasoning}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}}));
          if (!out.tool_calls.empty()) {
            called = true;
            send(chunk({{"delta", {{"tool_calls", tool_calls_json(out.tool_calls, p->id)}}},
                        {"logprobs", nullptr},
                        {"finish_reason", nullptr}}));
          }
        }
        if (!lps.empty()) send(chunk(text_choice("")));
        json last = chat ? json{{"delta", json::object()}, {"logprobs", nullptr}} : json{{"text", ""}, {"logprobs", nullptr}};
        last["finish_reason"] = called ? "tool_calls" : finish_reason(st.stop_reason);
        json end = chunk(last);
        end["usage"] = usage(*p, st, cached);
        send(end);
        if (p->req.include_usage) {
          json u = chunk(json::object());
          u["choices"] = json::array();
          u["usage"] = usage(*p, st, cached);
          send(u);
        }
      } catch (const ApiError& e) {
        send(error_body(e));
      } catch (const Error& e) {
        send(error_body(from_error(e)));
      } catch (const std::exception& e) {
        send(error_body(ApiError(500, e.what(), "", "server_error", "internal_error")));
      }
      if (!gone) {
        static const std::string done = "data: [DONE]\n\n";
        sink.write(done.data(), done.size());
      }
      sink.done();
      return true;
    });
  }

  void completion(const httplib::Request& req, httplib::Response& res, bool chat) {
    const std::string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
    try {
      auto p = std::make_shared<Prepared>(prepare(req.body, chat));
      std::shared_ptr<SlotPool::Lease> lease = pool->acquire(p->prompt);
      if (p->req.stream) stream(std::move(lease), p, res);
      else respond(*lease, *p, req, res);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, from_error(e));
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, e.what(), "", "server_error", "internal_error"));
    }
    metrics.request_done(endpoint, res.status == -1 ? 200 : res.status);  // httplib sets 200 after the handler
  }

  void routes() {
    http.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, true); });
    http.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, false); });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& r) {
      json m = {{"id", model.name}, {"object", "model"}, {"created", 0}, {"owned_by", "moeflux"},
                {"context_length", pool->context()}};
      r.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
      metrics.request_done("/v1/models", 200);
    });
    http.Get("/", [this](const httplib::Request&, httplib::Response& r) {
      r.set_content(chat_page_html(), "text/html; charset=utf-8");
      metrics.request_done("/", 200);
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
      r.set_content(dump(json{{"status", "ok"}, {"slots", pool->size()}, {"slots_busy", pool->busy()},
                              {"queue", pool->waiting()}}),
                    "application/json");
      metrics.request_done("/health", 200);
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
      std::string text = metrics.render(*model.engine, pool->waiting(), pool->busy(), pool->size(), batcher.stats());
      const PrefixCache::Stats pc = prefix->stats();
      text += fmt::format(
          "# HELP moeflux_prefix_cache_bytes states of earlier requests kept to resume shared prefixes\n"
          "# TYPE moeflux_prefix_cache_bytes gauge\nmoeflux_prefix_cache_bytes {}\n"
          "# HELP moeflux_prefix_cache_entries entries of the prefix cache\n"
          "# TYPE moeflux_prefix_cache_entries gauge\nmoeflux_prefix_cache_entries {}\n"
          "# HELP moeflux_prefix_cache_hits_total requests resumed from the prefix cache\n"
          "# TYPE moeflux_prefix_cache_hits_total counter\nmoeflux_prefix_cache_hits_total {}\n"
          "# HELP moeflux_prefix_cache_evictions_total entries dropped for the byte budget\n"
          "# TYPE moeflux_prefix_cache_evictions_total counter\nmoeflux_prefix_cache_evictions_total {}\n",
          pc.bytes, pc.entries, pc.hits, pc.evictions);
      r.set_content(text, "text/plain; version=0.0.4");
    });
    // httplib's own errors (unknown path, body too large, bad request
    // line) get OpenAI's error shape too.
    http.set_error_handler([this](const httplib::Request& q, httplib::Response& r) {
      if (!r.body.empty()) return;
      std::string msg = r.status == 404 ? fmt::format("{} {}: no such endpoint", q.method, q.path)
                                        : fmt::format("{} {}: HTTP error {}", q.method, q.path, r.status);
      if (r.status == 413) msg = fmt::format("the request body exceeds the server's limit of {} bytes", opt.max_body_bytes);
      send_error(r, ApiError(r.status, msg));
      metrics.request_done("other", r.status);
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(r, ApiError(500, what, "", "server_error", "internal_error"));
    });
    http.set_payload_max_length(opt.max_body_bytes);
    // Each connection holds a thread while it waits for a slot, so the pool
    // has room for every slot and queued request, plus a few for /health
    // and /metrics while all are busy.
    const size_t threads = size_t(opt.slots + opt.max_queue + 8);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  }

  int bind() {
    int port = opt.port;
    if (port == 0) port = http.bind_to_any_port(opt.host);
    else if (!http.bind_to_port(opt.host, port)) port = -1;
    if (port <= 0) fail("cannot listen on {}:{} (in use, or not an address of this machine)", opt.host, opt.port);
    bound_port = port;
    return port;
  }
};

Server::Server(ServerModel model, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options))) {}

Server::~Server() {
  stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int Server::start() {
  const int port = impl_->bind();
  impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
  while (!impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void Server::run() {
  impl_->bind();
  impl_->http.listen_after_bind();
}

void Server::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}
int Server::port() const { return impl_->bound_port; }

}  // namespace moeflux::server
