// The demo tokenizer that `synth` writes next to random-weight models:
// byte-level BPE trained by moeflux's own trainer (bpe_trainer.cpp) on
// demo_corpus(), in the tokenizer.json format that HF `tokenizers` reads.
#include "text/tokenizer/demo_tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/tokenizer/bpe_trainer.h"
#include "text/tokenizer/tokenizer.h"

namespace moeflux {

const char* const kDemoSplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

constexpr const char* kSpecials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

nlohmann::ordered_json byte_level(bool add_prefix_space) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", false}, {"use_regex", false}};
}

}  // namespace

std::string make_demo_tokenizer_json(int vocab_size) {
  const int n_special = int(std::size(kSpecials));
  if (vocab_size < 256 + n_special)
    fail("demo tokenizer: vocab_size {} is too small (needs 256 byte tokens + {} special tokens)", vocab_size, n_special);
  BpeTrainResult bpe = train_byte_level_bpe(demo_corpus(), kDemoSplitPattern, size_t(vocab_size - 256 - n_special));
  // A merge that spells an existing token adds no id, so re-train with
  // fewer merges until the vocab fits (at most a few rounds).
  while (int(bpe.vocab.size()) + n_special > vocab_size)
    bpe = train_byte_level_bpe(demo_corpus(), kDemoSplitPattern, bpe.merges.size() - 1);

  using J = nlohmann::ordered_json;
  J vocab = J::object();
  for (size_t i = 0; i < bpe.vocab.size(); ++i) vocab[bpe.vocab[i]] = int(i);
  J merges = J::array();
  // "left right" strings: byte-level tokens never hold a space (it is "Ġ"),
  // and every tokenizers version reads this form.
  for (const auto& [a, b] : bpe.merges) merges.push_back(a + " " + b);

  J added = J::array();
  int next_id = int(bpe.vocab.size());
  auto add_special = [&](const std::string& content) {
    added.push_back({{"id", next_id++}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  };
  for (const char* s : kSpecials) add_special(s);
  // Fill the rest so that every id a vocab_size-row model can sample decodes.
  for (int k = 0; next_id < vocab_size; ++k) add_special("<|reserved_" + std::to_string(k) + "|>");

  J tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         J::array({J{{"type", "Split"},
                     {"pattern", {{"Regex", kDemoSplitPattern}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                   byte_level(false)})}}},
      {"post_processor", byte_level(false)},
      {"decoder", byte_level(false)},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  return tok.dump(1) + "\n";
}

std::string make_demo_tokenizer_config_json() {
  nlohmann::ordered_json cfg = {
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"add_bos_token", false},
      {"add_eos_token", false},
      {"bos_token", nullptr},
      {"eos_token", "<|im_end|>"},
      {"pad_token", "<|endoftext|>"},
      {"unk_token", nullptr},
      {"clean_up_tokenization_spaces", false},
      {"model_max_length", 32768},
      {"chat_template",
       "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
       "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
  };
  return cfg.dump(1) + "\n";
}

}  // namespace moeflux
