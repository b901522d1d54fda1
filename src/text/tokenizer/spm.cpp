#include "text/tokenizer/spm.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

namespace {

struct Symbol {
  uint32_t off, len;  // bytes of the input; len 0 = merged away
  int32_t prev, next;
};

struct Bigram {
  float score;
  int32_t left, right;
  uint32_t len;  // len of the pair when queued: a changed length means the entry is stale
  // std::priority_queue order: highest score first, then the leftmost pair
  // (llama.cpp's llm_bigram_spm::comparator).
  bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
};

struct Workspace {
  std::vector<Symbol> syms;
  std::vector<Bigram> heap;
};

Workspace& workspace() {
  thread_local Workspace w;
  return w;
}

}  // namespace

SpmModel::SpmModel(const std::vector<std::string>& tokens, std::vector<float> scores, std::optional<int32_t> unk_id,
                   const std::string& source)
    : id_to_token_(tokens), scores_(std::move(scores)), unk_id_(unk_id) {
  if (scores_.size() != id_to_token_.size())
    fail("{}: tokenizer.ggml.scores has {} entries for {} tokens", source, scores_.size(), id_to_token_.size());
  token_to_id_.reserve(id_to_token_.size());
  for (size_t i = 0; i < id_to_token_.size(); ++i) {
    if (id_to_token_[i].empty()) id_to_token_[i] = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp loads it
    int32_t prev = token_to_id_.find(id_to_token_[i]);
    if (prev >= 0) fail("{}: tokenizer.ggml.tokens: token {} \"{}\" is also token {}", source, prev, id_to_token_[i], i);
    token_to_id_.insert(id_to_token_[i], int32_t(i));
  }
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    int32_t id = token_to_id_.find(buf);
    if (id < 0) id = token_to_id_.find(std::string(1, char(b)));
    byte_ids_[b] = id;
  }
}

void SpmModel::set_extra_token(int32_t id, const std::string& text) {
  // GGUF added tokens are rows of the vocabulary already; an id past it
  // would be a bug in the builder, not in the file.
  if (!has_id(id) || id_to_token_[size_t(id)] != text)
    fail("SPM vocabulary: added token {} \"{}\" is not the vocabulary's token {}", id, text, id);
}

void SpmModel::push_bytes(std::string_view piece, std::vector<int32_t>& out) const {
  bool all = true;
  for (unsigned char c : piece) all = all && byte_ids_[c] >= 0;
  if (all) {
    for (unsigned char c : piece) out.push_back(byte_ids_[c]);
    return;
  }
  // llama.cpp throws here (token_to_id.at); the unknown token is what
  // SentencePiece and HF emit for a character they cannot spell.
  if (!unk_id_)
    fail("SPM vocabulary: cannot encode \"{}\": a byte has no <0xNN> token and there is no unknown token",
         std::string(piece));
  out.push_back(*unk_id_);
}

void SpmModel::tokenize(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  auto& w = workspace();
  auto& syms = w.syms;
  auto& heap = w.heap;
  syms.clear();
  heap.clear();
  for (size_t off = 0; off < text.size();) {
    // As llama.cpp: a lead byte's length, cut at the end of the text.
    size_t len = std::min(text.size() - off, size_t(utf8::seq_len(uint8_t(text[off]))));
    int32_t i = int32_t(syms.size());
    syms.push_back({uint32_t(off), uint32_t(len), i - 1, off + len == text.size() ? -1 : i + 1});
    off += len;
  }
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = syms[size_t(left)];
    const Symbol& r = syms[size_t(right)];
    uint32_t len = l.len + r.len;
    int32_t id = token_to_id_.find(text.substr(l.off, len));
    if (id < 0) return;
    heap.push_back({scores_[size_t(id)], left, right, len});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 1; i < int32_t(syms.size()); ++i) try_add(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Bigram b = heap.back();
    heap.pop_back();
    Symbol& l = syms[size_t(b.left)];
    Symbol& r = syms[size_t(b.right)];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // one side changed since it was queued
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[size_t(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  // llama.cpp's resegment(): a merged piece is always a token (merges need
  // the concatenation to be one), so only single characters can fall back.
  for (int32_t i = 0; i >= 0; i = syms[size_t(i)].next) {
    std::string_view piece = text.substr(syms[size_t(i)].off, syms[size_t(i)].len);
    int32_t id = token_to_id_.find(piece);
    if (id >= 0) out.push_back(id);
    else push_bytes(piece, out);
  }
}

void SpmModel::tokenize_bytes(std::string_view word, std::vector<int32_t>& out) const {
  std::string mapped;
  utf8::bytes_to_chars(word, mapped);
  tokenize(mapped, out);
}

}  // namespace moeflux
