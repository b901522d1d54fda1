#include "server/api_request.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "moeflux/error.h"
#include "server/api_error.h"

namespace moeflux::server {

namespace {

using json = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& field, const std::string& message) { throw ApiError(400, message, field); }

double number(const json& j, const std::string& field, double lo, double hi) {
  if (!j.is_number()) bad(field, fmt::format("'{}' must be a number, got {}", field, j.type_name()));
  const double v = j.get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) bad(field, fmt::format("'{}' is {}, must be in [{}, {}]", field, v, lo, hi));
  return v;
}

int64_t integer(const json& j, const std::string& field, int64_t lo, int64_t hi) {
  if (!j.is_number_integer()) bad(field, fmt::format("'{}' must be an integer, got {}", field, j.type_name()));
  if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    bad(field, fmt::format("'{}' is out of range [{}, {}]", field, lo, hi));
  const int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) bad(field, fmt::format("'{}' is {}, must be in [{}, {}]", field, v, lo, hi));
  return v;
}

bool boolean(const json& j, const std::string& field) {
  if (!j.is_boolean()) bad(field, fmt::format("'{}' must be true or false, got {}", field, j.type_name()));
  return j.get<bool>();
}

std::string string(const json& j, const std::string& field) {
  if (!j.is_string()) bad(field, fmt::format("'{}' must be a string, got {}", field, j.type_name()));
  return j.get<std::string>();
}

// A field present and not null.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::vector<int32_t> token_list(const json& j, const std::string& name, int32_t vocab) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < j.size(); ++i)
    ids.push_back(int32_t(integer(j[i], fmt::format("{}[{}]", name, i), 0, vocab - 1)));
  return ids;
}

// Message content: a string, null, or a list of {"type": "text", "text": ...}
// parts, joined; other part types (images, audio) are refused.
std::string flatten_content(const json& c, const std::string& where) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad(where, fmt::format("'{}' must be a string or a list of text parts", where));
  std::string text;
  for (size_t i = 0; i < c.size(); ++i) {
    const std::string at = fmt::format("{}[{}]", where, i);
    if (!c[i].is_object()) bad(at, fmt::format("'{}' must be an object", at));
    const json* type = field(c[i], "type");
    if (!type || string(*type, at + ".type") != "text")
      bad(at + ".type", fmt::format("'{}.type' must be \"text\": only text content is supported", at));
    const json* t = field(c[i], "text");
    if (!t) bad(at + ".text", fmt::format("'{}.text' is missing", at));
    text += string(*t, at + ".text");
  }
  return text;
}

json parse_messages(const json& m) {
  if (!m.is_array() || m.empty()) bad("messages", "'messages' must be a non-empty list of messages");
  json out = json::array();
  for (size_t i = 0; i < m.size(); ++i) {
    const std::string at = fmt::format("messages[{}]", i);
    if (!m[i].is_object()) bad(at, fmt::format("'{}' must be an object with 'role' and 'content'", at));
    json msg = m[i];
    const json* role = field(msg, "role");
    if (!role) bad(at + ".role", fmt::format("'{}.role' is missing", at));
    const std::string r = string(*role, at + ".role");
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool")
      bad(at + ".role", fmt::format("'{}.role' is '{}'; expected system, developer, user, assistant or tool", at, r));
    if (r == "developer") msg["role"] = "system";  // templates know the older name
    const json* content = field(msg, "content");
    if (!content && r != "assistant") bad(at + ".content", fmt::format("'{}.content' is missing", at));
    msg["content"] = content ? flatten_content(*content, at + ".content") : std::string();
    out.push_back(std::move(msg));
  }
  return out;
}

// tools: [{"type": "function", "function": {"name", "description"?,
// "parameters"?}}]; tool_choice "none", "auto", "required" or
// {"type": "function", "function": {"name": N}} (N one of the tools).
void parse_tools(const json& body, bool chat, CompletionRequest& r) {
  const json* tools = field(body, "tools");
  std::string choice = "auto";
  if (const json* v = field(body, "tool_choice")) {
    if (v->is_object()) {
      const json* type = field(*v, "type");
      const json* fn = field(*v, "function");
      const json* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
      if (!type || !type->is_string() || type->get<std::string>() != "function" || !name)
        bad("tool_choice", "'tool_choice' as an object must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
      r.forced_tool = string(*name, "tool_choice.function.name");
      if (r.forced_tool.empty()) bad("tool_choice.function.name", "'tool_choice.function.name' is empty");
      choice = "named";
    } else {
      choice = string(*v, "tool_choice");
      if (choice != "none" && choice != "auto" && choice != "required")
        bad("tool_choice", fmt::format("'tool_choice' is '{}'; expected \"none\", \"auto\", \"required\" or a "
                                       "named function", choice));
    }
  }
  if (!tools || (tools->is_array() && tools->empty())) {
    if (choice == "required" || choice == "named")
      bad("tool_choice", "'tool_choice' asks for a tool call, but no 'tools' are given");
    return;
  }
  if (!chat) bad("tools", "'tools' is for /v1/chat/completions");
  if (!tools->is_array() || tools->size() > 128) bad("tools", "'tools' must be a list of at most 128 tools");
  bool named_found = false;
  for (size_t i = 0; i < tools->size(); ++i) {
    const std::string at = fmt::format("tools[{}]", i);
    const json& t = (*tools)[i];
    if (!t.is_object()) bad(at, fmt::format("'{}' must be an object", at));
    const json* type = field(t, "type");
    if (!type || string(*type, at + ".type") != "function")
      bad(at + ".type", fmt::format("'{}.type' must be \"function\"", at));
    const json* fn = field(t, "function");
    if (!fn || !fn->is_object()) bad(at + ".function", fmt::format("'{}.function' must be an object", at));
    const json* name = field(*fn, "name");
    if (!name || string(*name, at + ".function.name").empty())
      bad(at + ".function.name", fmt::format("'{}.function.name' must be a non-empty string", at));
    if (const json* p = field(*fn, "parameters"); p && !p->is_object())
      bad(at + ".function.parameters", fmt::format("'{}.function.parameters' must be a JSON schema object", at));
    named_found = named_found || name->get<std::string>() == r.forced_tool;
  }
  if (choice == "named" && !named_found)
    bad("tool_choice.function.name",
        fmt::format("'tool_choice' names the function '{}', which is not one of the 'tools'", r.forced_tool));
  r.tools = *tools;
  r.parse_tool_calls = choice != "none";
  r.force_tool_call = choice == "required" || choice == "named";
}

// {"type": "text"} | {"type": "json_object"} |
// {"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}
std::shared_ptr<const json_constraint::Grammar> parse_response_format(const json& v) {
  const json* t = v.is_object() ? field(v, "type") : nullptr;
  if (!t) bad("response_format", "'response_format' must be an object with a 'type'");
  const std::string type = string(*t, "response_format.type");
  try {
    if (type == "text") return nullptr;
    if (type == "json_object") return std::make_shared<const json_constraint::Grammar>(json_constraint::Grammar::any_object());
    if (type == "json_schema") {
      const json* js = field(v, "json_schema");
      if (!js || !js->is_object()) bad("response_format.json_schema", "'response_format.json_schema' must be an object");
      const json* schema = field(*js, "schema");
      if (!schema) bad("response_format.json_schema.schema", "'response_format.json_schema.schema' is missing");
      return std::make_shared<const json_constraint::Grammar>(json_constraint::Grammar::from_schema(*schema));
    }
  } catch (const Error& e) {
    bad("response_format.json_schema.schema", e.what());
  }
  bad("response_format.type",
      fmt::format("'response_format.type' is '{}'; expected \"text\", \"json_object\" or \"json_schema\"", type));
}

}  // namespace

void check_session_name(const std::string& name, const std::string& f) {
  bool ok = !name.empty() && name.size() <= 128 && name[0] != '.';
  for (char c : name) ok &= std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  if (!ok)
    bad(f, fmt::format("'{}' must be a plain name (letters, digits, '-', '_', '.'; not starting with '.'; at most 128 "
                       "characters)", f));
}

CompletionRequest parse_completion_request(const std::string& text, bool chat, int32_t vocab) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& e) {  // syntax, and numbers beyond a double (out_of_range 406)
    throw ApiError(400, fmt::format("the body is not valid JSON: {}", e.what()));
  }
  if (!body.is_object()) throw ApiError(400, "the body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  // OpenAI's defaults: the model's plain distribution unless asked otherwise.
  r.sampling.temperature = 1;
  r.sampling.top_p = 1;
  r.sampling.top_k = 0;
  r.sampling.min_p = 0;
  r.sampling.penalty_last_n = -1;
  if (const json* v = field(body, "model")) r.model = string(*v, "model");
  if (chat) {
    const json* m = field(body, "messages");
    if (!m) bad("messages", "'messages' is required");
    r.messages = parse_messages(*m);
  } else {
    const json* p = field(body, "prompt");
    if (!p) bad("prompt", "'prompt' is required");
    json one = *p;
    if (one.is_array() && one.size() == 1 && (one[0].is_string() || one[0].is_array())) one = json(one[0]);
    if (one.is_string()) {
      r.prompt = one.get<std::string>();
    } else if (one.is_array() && !one.empty() && std::all_of(one.begin(), one.end(), [](const json& x) { return x.is_number(); })) {
      r.prompt_tokens = token_list(one, "prompt", vocab);
    } else {
      bad("prompt", "'prompt' must be a string, a list of token ids, or a list of one of those (one prompt per request)");
    }
  }
  if (const json* v = field(body, "n"); v && integer(*v, "n", 1, 1 << 20) != 1)
    bad("n", "'n' must be 1: one choice per request is supported");
  if (const json* v = field(body, "best_of"); v && integer(*v, "best_of", 1, 1 << 20) != 1)
    bad("best_of", "'best_of' must be 1");
  if (const json* v = field(body, "echo"); v && boolean(*v, "echo")) bad("echo", "'echo' is not supported");
  if (const json* v = field(body, "suffix"); v && !string(*v, "suffix").empty()) bad("suffix", "'suffix' is not supported");
  if (const json* v = field(body, "stream")) r.stream = boolean(*v, "stream");
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) bad("stream_options", "'stream_options' must be an object");
    if (const json* u = field(*v, "include_usage")) r.include_usage = boolean(*u, "stream_options.include_usage");
  }
  for (const char* name : {"max_tokens", "max_completion_tokens"})
    if (const json* v = field(body, name)) r.max_tokens = int(integer(*v, name, 1, std::numeric_limits<int32_t>::max()));
  if (const json* v = field(body, "temperature")) r.sampling.temperature = float(number(*v, "temperature", 0, 2));
  if (const json* v = field(body, "top_p")) {
    const double p = number(*v, "top_p", 0, 1);
    if (p == 0) r.sampling.temperature = 0;  // only the most likely token: greedy
    else r.sampling.top_p = float(p);
  }
  if (const json* v = field(body, "top_k")) r.sampling.top_k = int(integer(*v, "top_k", 0, vocab));
  if (const json* v = field(body, "min_p")) r.sampling.min_p = float(number(*v, "min_p", 0, 1));
  if (const json* v = field(body, "repetition_penalty"))
    r.sampling.repetition_penalty = float(number(*v, "repetition_penalty", 1e-3, 100));
  if (const json* v = field(body, "presence_penalty")) r.sampling.presence_penalty = float(number(*v, "presence_penalty", -2, 2));
  if (const json* v = field(body, "frequency_penalty"))
    r.sampling.frequency_penalty = float(number(*v, "frequency_penalty", -2, 2));
  if (const json* v = field(body, "seed")) {
    r.sampling.seed = uint64_t(integer(*v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
    r.seeded = true;
  }
  if (const json* v = field(body, "logit_bias")) {
    if (!v->is_object()) bad("logit_bias", "'logit_bias' must be an object mapping token ids to biases");
    for (const auto& [key, bias] : v->items()) {
      const std::string f = "logit_bias." + key;
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0 || id >= vocab)
        bad("logit_bias", fmt::format("'logit_bias' key '{}' is not a token id in [0, {})", key, vocab));
      r.sampling.logit_bias.emplace_back(int32_t(id), float(number(bias, f, -100, 100)));
    }
  }
  if (const json* v = field(body, "stop")) {
    if (v->is_string()) {
      r.stop.push_back(v->get<std::string>());
    } else if (v->is_array() && v->size() <= 16) {
      for (size_t i = 0; i < v->size(); ++i) r.stop.push_back(string((*v)[i], fmt::format("stop[{}]", i)));
    } else {
      bad("stop", "'stop' must be a string or a list of at most 16 strings");
    }
    for (size_t i = 0; i < r.stop.size(); ++i)
      if (r.stop[i].empty()) bad("stop", fmt::format("'stop' entry {} is empty", i));
  }
  if (chat) {
    bool want = false;
    if (const json* v = field(body, "logprobs")) want = boolean(*v, "logprobs");
    if (const json* v = field(body, "top_logprobs")) {
      const int n = int(integer(*v, "top_logprobs", 0, 20));
      if (!want) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
      r.logprobs = n;
    } else if (want) {
      r.logprobs = 0;
    }
  } else if (const json* v = field(body, "logprobs")) {
    r.logprobs = int(integer(*v, "logprobs", 0, 20));
  }
  parse_tools(body, chat, r);
  if (const json* v = field(body, "response_format")) r.json_grammar = parse_response_format(*v);
  if (r.force_tool_call && r.json_grammar)
    bad("response_format", "'response_format' and a 'tool_choice' that forces a call cannot be combined");
  if (const json* v = field(body, "load_session")) check_session_name(r.load_session = string(*v, "load_session"), "load_session");
  if (const json* v = field(body, "save_session")) check_session_name(r.save_session = string(*v, "save_session"), "save_session");
  try {
    r.sampling.validate(vocab);
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  return r;
}

}  // namespace moeflux::server
