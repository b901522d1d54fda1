// Recursive-descent parser following Jinja's own grammar and precedence
// (jinja2/parser.py), so templates bind the way transformers renders them.
#pragma once
#include <string>

#include "text/chat/jinja_ast.h"
#include "text/chat/jinja_lexer.h"

namespace moeflux::jinja {

// `source` must already be normalized (normalize_source). Unknown tags,
// filters and tests fail here with their name and position.
Body parse(const std::string& source, const SourceMap& map, const LexOptions& opts = {});

}  // namespace moeflux::jinja
