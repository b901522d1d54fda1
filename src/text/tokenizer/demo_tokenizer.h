#pragma once
// Internals of make_demo_tokenizer_json (declared in tokenizer.h).
namespace moeflux {

// The built-in training text (a few KB of English, chat and code).
const char* demo_corpus();

// The pre-tokenizer regex of the demo tokenizer (Llama 3's, with digits in
// groups of up to three).
extern const char* const kDemoSplitPattern;

}  // namespace moeflux
