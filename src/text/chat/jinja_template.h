// A parsed Jinja template and its tree-walking renderer: the subset of
// Jinja2 that Hugging Face chat templates use, rendered the way transformers
// renders them (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
// loopcontrols, default Undefined).
#pragma once
#include <memory>
#include <string>

#include "text/chat/jinja_ast.h"
#include "text/chat/jinja_lexer.h"
#include "text/chat/jinja_limits.h"
#include "text/chat/jinja_value.h"

namespace moeflux::jinja {

class Template {
 public:
  // Throws moeflux::Error naming the construct and "name:line:column" on a
  // syntax error or an unsupported tag, filter or test. `limits` bound the
  // parse and every later render (jinja_limits.h).
  static Template parse(const std::string& source, std::string name = "template", const LexOptions& opts = {},
                        const Limits& limits = {});

  // `context` holds the template's variables (they shadow the builtin
  // globals). Render errors, raise_exception included, name the position;
  // so does a render that exceeds one of the limits.
  std::string render(const DictData& context) const;
  std::string render(const nlohmann::ordered_json& context) const;

 private:
  std::shared_ptr<const SourceMap> map_;
  Limits limits_;
  std::shared_ptr<const Body> body_;
};

}  // namespace moeflux::jinja
