// Streaming detokenization. Decoders are not token-local (Llama 2's Strip
// removes one leading space of the whole text, Metaspace treats the first
// token differently, byte runs assemble across tokens), so each step
// decodes a short window: the tokens already emitted last time (context)
// plus the new ones, and emits what the new ones added. This is the scheme
// of HF's DecodeStream, with one change: whether to hold back is decided on
// the bytes behind the tokens (an unfinished UTF-8 sequence at the end),
// not on a trailing U+FFFD, so a real U+FFFD token is not held forever.
#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/utf8.h"

namespace moeflux {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special) : tok_(&tok), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  // Skipped ids never reach the decoder in Tokenizer::decode either.
  if (skip_special_ && tok_->is_special(id)) return "";
  if (id < 0 || id >= tok_->vocab_size()) return "";
  ids_.push_back(id);
  pending_bytes_ += tok_->token_bytes(id);
  if (utf8::incomplete_tail(pending_bytes_) > 0) return "";  // the next bytes may complete it
  return flush();
}

std::string StreamDecoder::flush() {
  if (ids_.size() == ctx_) return "";
  std::string text = tok_->decode(ids_, skip_special_);
  std::string out;
  if (text.size() >= ctx_text_.size() && text.compare(0, ctx_text_.size(), ctx_text_) == 0) {
    out = text.substr(ctx_text_.size());
  } else {
    // The decoder rewrote the context (no supported decoder does): emit
    // from the first differing character so the output stays valid UTF-8.
    size_t k = 0;
    while (k < text.size() && k < ctx_text_.size() && text[k] == ctx_text_[k]) ++k;
    while (k > 0 && (uint8_t(text[k]) & 0xC0) == 0x80) --k;
    out = text.substr(k);
  }
  // The new tokens become the context of the next step.
  ids_.erase(ids_.begin(), ids_.begin() + std::ptrdiff_t(ctx_));
  ctx_ = ids_.size();
  ctx_text_ = ctx_ == 0 ? std::string() : tok_->decode(ids_, skip_special_);
  pending_bytes_.clear();
  return out;
}

}  // namespace moeflux
