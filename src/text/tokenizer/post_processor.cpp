#include "text/tokenizer/post_processor.h"

#include "core/error.h"

namespace moeflux {

void PostProcessor::apply(std::vector<int32_t>& ids) const {
  for (const auto& w : wraps) {
    if (w.before.empty() && w.after.empty()) continue;
    std::vector<int32_t> out;
    out.reserve(ids.size() + w.before.size() + w.after.size());
    out.insert(out.end(), w.before.begin(), w.before.end());
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), w.after.begin(), w.after.end());
    ids = std::move(out);
  }
}

namespace {

void add(const json::Value& v, PostProcessor& pp) {
  if (v.is_null()) return;
  std::string type = v.at("type").str();
  if (type == "ByteLevel") return;  // only trims offsets; ids unchanged
  if (type == "Sequence") {
    for (const auto& e : v.at("processors").elements()) add(e, pp);
    return;
  }
  if (type == "TemplateProcessing") {
    // "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}, ...]
    // special_tokens: {"<s>": {"ids": [1], ...}}
    json::Value specials = v.at("special_tokens");
    PostProcessor::Wrap w;
    bool seen_seq = false;
    for (const auto& item : v.at("single").elements()) {
      if (item.has("Sequence")) {
        std::string id = item.at("Sequence").at("id").str();
        if (id != "A") item.fail_msg("single-sequence template refers to sequence \"" + id + "\"");
        if (seen_seq) item.fail_msg("template holds the sequence twice");
        seen_seq = true;
      } else if (item.has("SpecialToken")) {
        std::string name = item.at("SpecialToken").at("id").str();
        if (!specials.has(name)) item.fail_msg("special token \"" + name + "\" is not in special_tokens");
        for (const auto& id : specials.at(name).at("ids").elements())
          (seen_seq ? w.after : w.before).push_back(int32_t(id.as_int()));
      } else {
        item.fail_msg("expected Sequence or SpecialToken");
      }
    }
    if (!seen_seq) v.at("single").fail_msg("template has no sequence");
    pp.wraps.push_back(std::move(w));
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    // "cls": ["<s>", 0], "sep": ["</s>", 2]
    PostProcessor::Wrap w;
    w.before.push_back(int32_t(v.at("cls").at(1).as_int()));
    w.after.push_back(int32_t(v.at("sep").at(1).as_int()));
    pp.wraps.push_back(std::move(w));
    return;
  }
  v.at("type").fail_msg("unsupported post_processor type \"" + type + "\"");
}

}  // namespace

PostProcessor make_post_processor(const json::Value& v) {
  PostProcessor pp;
  add(v, pp);
  return pp;
}

}  // namespace moeflux
