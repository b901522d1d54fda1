// moeflux's OpenAI-compatible HTTP server (cpp-httplib):
//   POST /v1/chat/completions, /v1/completions (streamed as SSE or not)
//   GET  /v1/models, /health, /metrics (Prometheus text), / (a chat page)
// Requests run on a pool of sessions (slots) of one engine; beyond the
// slots, a bounded queue waits, and beyond that the answer is 503 with
// Retry-After. A streaming client that goes away cancels its generation.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "moeflux/engine.h"
#include "text/chat/chat_template.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux::server {

// A model with its text side, as the server needs it.
struct ServerModel {
  std::shared_ptr<Engine> engine;
  Tokenizer tokenizer;
  ChatTemplate chat_template = ChatTemplate::fallback();
  std::vector<int32_t> stop_tokens;  // end-of-sequence ids
  std::string name;                  // the model id /v1/models lists
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;     // 0: any free port (tests)
  int slots = 1;       // sessions generating at once
  int max_queue = 16;  // requests waiting for a slot before 503
  int context = 0;     // positions per session (0: the model's maximum)
  // Where load_session / save_session files live; empty: those fields are refused.
  std::string session_dir;
  size_t max_body_bytes = 8 << 20;
  // RAM for states of earlier requests to resume shared prefixes from
  // (server/prefix_cache.h); 0: off. Sequences shorter than the minimum
  // are not kept.
  uint64_t prefix_cache_bytes = 0;
  size_t prefix_cache_min_tokens = 64;
  // Decode steps of concurrent requests run as one pass (runtime/decode_batcher.h).
  bool batch_decode = true;
};

class Server {
 public:
  Server(ServerModel model, ServerOptions options);
  ~Server();  // stops and joins
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (throws naming the address when it cannot) and serves on a
  // background thread; returns the port.
  int start();
  // Binds and serves on this thread until stop().
  void run();
  // Ends serving (from any thread; not from a signal handler).
  void stop();
  int port() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeflux::server
