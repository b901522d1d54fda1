#include "text/tokenizer/bpe_trainer.h"

#include <map>
#include <tuple>

#include "text/tokenizer/regex.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

BpeTrainResult train_byte_level_bpe(const std::string& text, const std::string& split_pattern, size_t max_merges) {
  BpeTrainResult r;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    utf8::append(s, utf8::byte_to_char(uint8_t(b)));
    r.vocab.push_back(std::move(s));
  }

  // Word counts; std::map keeps the order (and so the result) deterministic.
  std::map<std::string, int> counts;
  {
    Regex re(split_pattern);
    std::string valid = utf8::to_valid_lossy(text);
    std::vector<std::pair<uint32_t, uint32_t>> m;
    re.find_all(valid, m);
    for (auto [b, e] : m)
      if (e > b) ++counts[valid.substr(b, e - b)];
  }
  // Each word as a sequence of token ids (initially its bytes).
  std::vector<std::pair<std::vector<int>, int>> words;
  for (const auto& [w, c] : counts) {
    std::vector<int> ids;
    for (unsigned char ch : w) ids.push_back(ch);  // byte b is token b
    words.emplace_back(std::move(ids), c);
  }

  std::map<std::string, int> ids_of;
  for (size_t i = 0; i < r.vocab.size(); ++i) ids_of[r.vocab[i]] = int(i);
  while (r.merges.size() < max_merges) {
    std::map<std::pair<int, int>, int> pairs;
    for (const auto& [ids, c] : words)
      for (size_t i = 0; i + 1 < ids.size(); ++i) pairs[{ids[i], ids[i + 1]}] += c;
    const std::pair<int, int>* best = nullptr;
    int best_count = 0;
    for (const auto& [p, c] : pairs) {
      if (c < 2) continue;  // a pair must occur at least twice to be worth a token
      if (best == nullptr || c > best_count ||
          (c == best_count && std::tie(r.vocab[size_t(p.first)], r.vocab[size_t(p.second)]) <
                                  std::tie(r.vocab[size_t(best->first)], r.vocab[size_t(best->second)]))) {
        best = &p;
        best_count = c;
      }
    }
    if (best == nullptr) break;
    auto [a, b] = *best;
    std::string merged = r.vocab[size_t(a)] + r.vocab[size_t(b)];
    // Two pairs can spell the same string ("ab"+"c", "a"+"bc"); as in HF's
    // trainer the merge is kept and maps to the existing token.
    auto [it, fresh] = ids_of.emplace(merged, int(r.vocab.size()));
    int id = it->second;
    if (fresh) r.vocab.push_back(merged);
    r.merges.emplace_back(r.vocab[size_t(a)], r.vocab[size_t(b)]);
    for (auto& [ids, c] : words) {
      (void)c;
      std::vector<int> out;
      out.reserve(ids.size());
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
          out.push_back(id);
          ++i;
        } else {
          out.push_back(ids[i]);
        }
      }
      ids = std::move(out);
    }
  }
  return r;
}

}  // namespace moeflux
