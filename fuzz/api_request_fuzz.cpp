// libFuzzer target for the server's request bodies (/v1/chat/completions
// and /v1/completions), untrusted input from any client. Any input must
// parse or throw server::ApiError (a 400 naming the field): no other
// exception, no crash, no sanitizer report, no leak. A forcing tool_choice
// also builds its call grammar from the tools, under the same rule.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "server/api_error.h"
#include "server/api_request.h"
#include "server/tool_choice.h"

using namespace moeflux;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (bool chat : {true, false}) {
    try {
      const server::CompletionRequest r = server::parse_completion_request(body, chat, 1000);
      // What the server does next with a parsed request must hold too.
      if (r.sampling.temperature < 0 || r.logprobs > 20 || (r.max_tokens && *r.max_tokens < 1)) std::abort();
      // tool_choice "required" / named: the tools' schemas compiled into a
      // call grammar (a 400 for what it cannot express).
      if (r.force_tool_call)
        for (ToolCallFormat f : {ToolCallFormat::Hermes, ToolCallFormat::Llama3Json})
          (void)server::forced_tool_call_grammar(f, r.tools, r.forced_tool);
    } catch (const server::ApiError& e) {
      if (e.status != 400 && e.status != 404) std::abort();
      (void)server::error_body(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "unexpected exception: %s\n", e.what());
      std::abort();
    }
  }
  return 0;
}
