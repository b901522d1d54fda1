// Constrained JSON output: schemas compile or are refused by name; the
// matcher accepts exactly the documents of the grammar; random generation
// under the token mask always ends in a document that parses and validates
// (checked by a plain validator written here from the JSON Schema rules,
// not from the grammar).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "sampling/json_grammar.h"
#include "sampling/json_matcher.h"
#include "sampling/json_token_mask.h"
#include "schema_validator.h"

namespace moeflux::json_constraint {
namespace {

using json = nlohmann::json;
using test::valid;

bool accepts(const nlohmann::ordered_json& schema, std::string_view doc) {
  Grammar g = Grammar::from_schema(schema);
  JsonPrefix p(g);
  return p.feed(doc) && p.complete();
}


const nlohmann::ordered_json kPerson = nlohmann::ordered_json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 12},
    "age": {"type": "integer"},
    "height": {"type": "number"},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    "role": {"enum": ["admin", "user", null, 7]},
    "alive": {"type": "boolean"}
  },
  "required": ["name", "age"],
  "additionalProperties": false
})");

TEST(JsonGrammar, AcceptsDocumentsOfTheSchema) {
  EXPECT_TRUE(accepts(kPerson, R"({"name":"Ada","age":36})"));
  EXPECT_TRUE(accepts(kPerson, R"({"name":"Ada","age":-3,"height":1.5e+2,"tags":["a","b"],"role":null,"alive":true})"));
  EXPECT_TRUE(accepts(kPerson, "{\n  \"name\": \"\\u00e9\\n\u00e9\u4e2d\U0001F600\",\n  \"age\": 0\n}"));
  EXPECT_TRUE(accepts(kPerson, R"({"name":"x","age":1,"role":7})"));
  // The whole-document forms of the other kinds.
  EXPECT_TRUE(accepts(nlohmann::ordered_json{{"type", "number"}}, "-0.25E-3"));
  EXPECT_TRUE(accepts(nlohmann::ordered_json{{"type", "array"}, {"items", {{"type", "integer"}}}}, "[1, 2 ,3]"));
  EXPECT_TRUE(accepts(nlohmann::ordered_json::object(), R"({"a":[1,{"b":null}],"c":"d"})"));
  EXPECT_TRUE(accepts(nlohmann::ordered_json{{"type", {"string", "null"}}}, "null"));
}

TEST(JsonGrammar, RefusesDocumentsOutsideIt) {
  EXPECT_FALSE(accepts(kPerson, R"({"age":36})"));                      // name is required
  EXPECT_FALSE(accepts(kPerson, R"({"name":"Ada"})"));                  // age too
  EXPECT_FALSE(accepts(kPerson, R"({"name":"Ada","age":3.5})"));        // an integer
  EXPECT_FALSE(accepts(kPerson, R"({"name":"","age":3})"));             // minLength
  EXPECT_FALSE(accepts(kPerson, R"({"name":"abcdefghijklm","age":3})"));  // maxLength 12
  EXPECT_FALSE(accepts(kPerson, R"({"name":"a","age":3,"x":1})"));      // no other properties
  EXPECT_FALSE(accepts(kPerson, R"({"name":"a","age":3,"tags":["a","b","c","d"]})"));  // maxItems
  EXPECT_FALSE(accepts(kPerson, R"({"name":"a","age":3,"role":"root"})"));            // enum
  EXPECT_FALSE(accepts(kPerson, R"({"name":"a","age":03})"));            // leading zero
  EXPECT_FALSE(accepts(kPerson, "{\"name\":\"a\tb\",\"age\":3}"));        // raw control byte
  EXPECT_FALSE(accepts(kPerson, R"({"name":"\ud800","age":3})"));        // lone surrogate
  EXPECT_FALSE(accepts(kPerson, "{\"name\":\"\xC0\xAF\",\"age\":3}"));    // overlong UTF-8
  EXPECT_FALSE(accepts(kPerson, R"({"name":"a","age":3} x)"));           // anything after the end
  EXPECT_FALSE(accepts(kPerson, R"({"name":"a","age":3)"));              // not complete
  EXPECT_FALSE(accepts(nlohmann::ordered_json{{"type", "integer"}}, "1e5"));
}

TEST(JsonGrammar, RecursiveDefinitions) {
  const nlohmann::ordered_json tree = nlohmann::ordered_json::parse(R"({
    "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
              "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}},
    "$ref": "#/$defs/node"})");
  EXPECT_TRUE(accepts(tree, R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4,"kids":[]}]}]})"));
  EXPECT_FALSE(accepts(tree, R"({"v":1,"kids":[{"w":2}]})"));
  // A definition that refers to itself without reading anything ends.
  const nlohmann::ordered_json loop = nlohmann::ordered_json::parse(R"({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}},
                                    "$ref": "#/$defs/a"})");
  EXPECT_TRUE(accepts(loop, "null"));
  EXPECT_FALSE(accepts(loop, "1"));
}

TEST(JsonGrammar, UnsupportedKeywordsAreRefusedByName) {
  auto message = [](const nlohmann::ordered_json& s) {
    try {
      Grammar::from_schema(s);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message(nlohmann::ordered_json::parse(R"({"type":"string","pattern":"a+"})")).find("/pattern"), std::string::npos);
  EXPECT_NE(message(nlohmann::ordered_json::parse(R"({"properties":{"n":{"type":"integer","minimum":3}}})")).find("/properties/n/minimum"),
            std::string::npos);
  EXPECT_NE(message(nlohmann::ordered_json::parse(R"({"type":"object","properties":{},"required":["x"]})")).find("'x'"),
            std::string::npos);
  EXPECT_NE(message(nlohmann::ordered_json::parse(R"({"$ref":"#/$defs/missing"})")).find("missing"), std::string::npos);
  EXPECT_NE(message(nlohmann::ordered_json::parse(R"({"type":"array","minItems":3,"maxItems":2})")).find("minItems"), std::string::npos);
  EXPECT_NE(message(false).find("admits no document"), std::string::npos);
  EXPECT_NE(message(nlohmann::ordered_json::parse(R"({"type":"strin"})")).find("strin"), std::string::npos);
  EXPECT_EQ(message(nlohmann::ordered_json::parse(R"({"type":"string","description":"a name","title":"Name"})")), "(accepted)");
}

// A vocabulary like a real one: single bytes (so any text can be spelled),
// JSON punctuation runs, words, numbers, whitespace runs and UTF-8.
std::vector<std::string> toy_vocab() {
  std::vector<std::string> v = {""};  // id 0: a control token (the end token below)
  for (int b = 1; b < 256; ++b) v.push_back(std::string(1, char(b)));
  for (const char* s : {"{\"", "\":", "\",", "\"}", "\":\"", "\"]", "[\"", "},{", "}]", "]}", "null", "true", "false",
                        "name", "age", "tags", "role", "admin", "user", "12", "3.5", "-1", "e+", "\n  ", "\n", "  ",
                        "\\n", "\\u00", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "abc", " \"", "\"", "\":[",
                        ",\"", "kids", "v\":", "{}", "[]", "0", "7", "\\\""})
    v.push_back(s);
  return v;
}

// Draws tokens under the mask until an end token; closing tokens are
// favoured so that walks end. Returns the text, or nullopt past max_steps.
std::optional<std::string> generate(std::shared_ptr<const Grammar> grammar, std::mt19937& rng, int max_steps = 400) {
  const std::vector<std::string> vocab = toy_vocab();
  auto trie = std::make_shared<const MaskVocab>(vocab);
  JsonTokenMask mask(grammar, trie, {0});
  std::string out;
  std::vector<uint8_t> ok;
  std::vector<uint8_t> reference;
  for (int step = 0; step < max_steps; ++step) {
    mask.allowed(ok);
    mask.allowed_by_walk(reference);
    EXPECT_EQ(ok, reference) << "the shortcut for plain string text differs after: " << out;
    std::vector<int32_t> cands, closing;
    for (size_t i = 0; i < ok.size(); ++i)
      if (ok[i]) {
        cands.push_back(int32_t(i));
        if (i == 0 || vocab[i].find_first_of("\"}]") != std::string::npos) closing.push_back(int32_t(i));
      }
    EXPECT_FALSE(cands.empty()) << "no token allowed after: " << out;
    if (cands.empty()) return std::nullopt;
    const bool close = !closing.empty() && std::uniform_real_distribution<>(0, 1)(rng) < double(step) / max_steps + 0.2;
    const auto& pool = close ? closing : cands;
    const int32_t t = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
    mask.accept(t, vocab[size_t(t)]);
    if (mask.ended()) return out;
    out += vocab[size_t(t)];
  }
  return std::nullopt;
}

std::optional<std::string> generate(const nlohmann::ordered_json& schema, std::mt19937& rng, int max_steps = 400) {
  return generate(std::make_shared<const Grammar>(Grammar::from_schema(schema)), rng, max_steps);
}

TEST(JsonTokenMask, RandomGenerationAlwaysValidates) {
  using ojson = nlohmann::ordered_json;
  const std::vector<ojson> schemas = {
      kPerson,
      ojson::parse(R"({"type":"object"})"),
      ojson::parse(R"({"type":"array","items":{"anyOf":[{"type":"integer"},{"type":"string","maxLength":3}]},"minItems":2,"maxItems":4})"),
      ojson::parse(R"({"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/n"},"maxItems":2}},"required":["v"]}},"$ref":"#/$defs/n"})"),
      ojson::parse(R"({"type":"object","additionalProperties":{"type":"boolean"}})"),
      ojson::parse(R"({"oneOf":[{"type":"object","properties":{"kind":{"const":"a"},"x":{"type":"number"}},"required":["kind","x"]},{"type":"object","properties":{"kind":{"const":"b"}},"required":["kind"]}]})"),
  };
  std::mt19937 rng(1234);
  for (size_t si = 0; si < schemas.size(); ++si) {
    int finished = 0;
    for (int trial = 0; trial < 40; ++trial) {
      auto text = generate(schemas[si], rng);
      if (!text) continue;
      ++finished;
      json doc;
      ASSERT_NO_THROW(doc = json::parse(*text)) << "schema " << si << ": " << *text;
      const json schema = json::parse(schemas[si].dump());
      EXPECT_TRUE(valid(schema, doc, schema)) << "schema " << si << ": " << *text;
    }
    EXPECT_GT(finished, 20) << "schema " << si << ": too few walks ended";
  }
}

TEST(JsonTokenMask, EndOnlyWhenCompleteAndNothingAfterIt) {
  auto grammar = std::make_shared<const Grammar>(Grammar::from_schema_text(R"({"type": "boolean"})"));
  auto trie = std::make_shared<const MaskVocab>(toy_vocab());
  JsonTokenMask mask(grammar, trie, {0});
  std::vector<uint8_t> ok;
  mask.allowed(ok);
  EXPECT_FALSE(ok[0]);
  EXPECT_TRUE(ok[size_t('t')]);
  EXPECT_FALSE(ok[size_t('n')]);
  EXPECT_THROW(mask.accept(0, ""), Error);  // the end before a document
  mask.accept(int32_t('t'), "t");
  EXPECT_THROW(mask.accept(int32_t('x'), "x"), Error);
  mask.accept(int32_t('r'), "r");
  mask.accept(int32_t('u'), "u");
  mask.accept(int32_t('e'), "e");
  mask.allowed(ok);
  EXPECT_TRUE(ok[0]);
  EXPECT_EQ(std::count(ok.begin(), ok.end(), 1), 1);  // only the end
  std::vector<float> logits(ok.size(), 1.0f);
  mask.apply(logits);
  EXPECT_EQ(logits[0], 1.0f);
  EXPECT_TRUE(std::isinf(logits[1]));
  mask.accept(0, "");
  EXPECT_TRUE(mask.ended());
}

}  // namespace
}  // namespace moeflux::json_constraint

namespace moeflux::json_constraint {
namespace {

TEST(JsonGrammar, LiteralPrefixAndSuffixAroundTheDocument) {
  Grammar g = Grammar::from_schema_text(R"({"type": "integer"})");
  g.set_literals("<a>\n", "</a>");
  const auto full = [&](std::string_view text) {
    JsonPrefix p(g);
    return p.feed(text) && p.complete();
  };
  EXPECT_TRUE(full("<a>\n12</a>"));
  EXPECT_TRUE(full("<a>\n 12 \n</a>"));  // whitespace around the document
  EXPECT_FALSE(full("12"));
  EXPECT_FALSE(full("<a>12</a>"));         // the prefix is exact, its newline too
  EXPECT_FALSE(full("<a>\n12"));          // a number that could end is not the end: the suffix is due
  EXPECT_FALSE(full("<a>\n12</a"));
  EXPECT_FALSE(full("<a>\n12</a> "));     // nothing after the suffix
  EXPECT_FALSE(full("<a>\n\"x\"</a>"));
  JsonPrefix p(g);
  EXPECT_FALSE(p.feed("<b"));
  EXPECT_TRUE(p.feed("<a>\n7</a>"));
  EXPECT_FALSE(p.can_continue());

  Grammar only_prefix = Grammar::from_schema_text(R"({"type": "object"})");
  only_prefix.set_literals("<|python_tag|>", "");
  JsonPrefix q(only_prefix);
  EXPECT_TRUE(q.feed("<|python_tag|>{}"));
  EXPECT_TRUE(q.complete());
  EXPECT_FALSE(q.can_continue());
}

TEST(JsonTokenMask, RandomGenerationWithLiteralsAlwaysWrapsAValidDocument) {
  using ojson = nlohmann::ordered_json;
  const std::vector<std::pair<std::string, std::string>> literals = {
      {"<tool_call>\n", "</tool_call>"}, {"", "\n}"}, {"call: ", ""}, {"\"", "\""}};
  const std::vector<ojson> schemas = {kPerson, ojson::parse(R"({"type":"integer"})"),
                                      ojson::parse(R"({"type":"array","items":{"type":"number"},"maxItems":3})")};
  std::mt19937 rng(99);
  for (const auto& [prefix, suffix] : literals)
    for (size_t si = 0; si < schemas.size(); ++si) {
      auto g = std::make_shared<Grammar>(Grammar::from_schema(schemas[si]));
      g->set_literals(prefix, suffix);
      int finished = 0;
      for (int trial = 0; trial < 25; ++trial) {
        auto text = generate(g, rng);
        if (!text) continue;
        ++finished;
        ASSERT_TRUE(text->starts_with(prefix) && text->ends_with(suffix) &&
                    text->size() >= prefix.size() + suffix.size())
            << "'" << prefix << "' ... '" << suffix << "': " << *text;
        const std::string doc_text = text->substr(prefix.size(), text->size() - prefix.size() - suffix.size());
        json doc;
        ASSERT_NO_THROW(doc = json::parse(doc_text)) << *text;
        const json schema = json::parse(schemas[si].dump());
        EXPECT_TRUE(valid(schema, doc, schema)) << *text;
      }
      EXPECT_GT(finished, 12) << "'" << prefix << "' schema " << si << ": too few walks ended";
    }
}

}  // namespace
}  // namespace moeflux::json_constraint
