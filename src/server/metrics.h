// Server counters, rendered as Prometheus text for GET /metrics.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "moeflux/engine.h"
#include "runtime/decode_batcher.h"

namespace moeflux::server {

class Metrics {
 public:
  void request_done(const std::string& endpoint, int status);
  void generation_done(int prompt_tokens, int cached_tokens, int generated_tokens, double prefill_s, double decode_s);
  void cancelled() { ++cancelled_; }
  // The exposition text; the gauges (queue, slots, state bytes, experts)
  // are read from the engine and the pool now.
  std::string render(const Engine& engine, int waiting, int busy, int slots,
                     const DecodeBatcher::Stats& batching) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, generated_tokens_ = 0;
  double prefill_s_ = 0, decode_s_ = 0;
  double last_decode_tok_s_ = 0;
  std::atomic<uint64_t> cancelled_{0};
};

}  // namespace moeflux::server
