#pragma once
// Post-processors of tokenizer.json ("post_processor" key), reduced to what
// encode() of a single sequence needs: ids to put before and after.
#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer/json_reader.h"

namespace moeflux {

struct PostProcessor {
  // Applied in order; each wraps the current ids: before + ids + after.
  struct Wrap {
    std::vector<int32_t> before, after;
  };
  std::vector<Wrap> wraps;

  void apply(std::vector<int32_t>& ids) const;
};

// Supported: null, ByteLevel (no ids), TemplateProcessing ("single"),
// BertProcessing / RobertaProcessing (cls, sep), Sequence.
PostProcessor make_post_processor(const json::Value& v);

}  // namespace moeflux
