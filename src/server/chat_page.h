// The chat page served at GET /: one static HTML file with its script,
// talking to /v1/chat/completions with streaming. The stop button aborts
// the request, which ends the generation on the server (a client that
// disconnects is cancelled).
#pragma once

namespace moeflux::server {

const char* chat_page_html();

}  // namespace moeflux::server
