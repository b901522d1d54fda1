// Recursive-descent parser following Jinja's own grammar and precedence
// (jinja2/parser.py), so templates bind the way transformers renders them.
#pragma once
#include <string>

#include "text/chat/jinja_ast.h"
#include "text/chat/jinja_lexer.h"
#include "text/chat/jinja_limits.h"

namespace moeflux::jinja {

// `source` must already be normalized (normalize_source). Unknown tags,
// filters and tests fail here with their name and position, and so does
// nesting deeper than limits.max_nesting (the parser and the renderer
// recurse once per level).
Body parse(const std::string& source, const SourceMap& map, const LexOptions& opts = {},
           const Limits& limits = {});

}  // namespace moeflux::jinja
