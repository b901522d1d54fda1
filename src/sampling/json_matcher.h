// Runs a compiled JSON grammar (json_grammar.h) one byte at a time. The
// state is a set of threads, each a stack of frames (one per open value),
// because a prefix can be read more than one way: an anyOf whose branches
// start alike, a number that may end here or go on. Feeding a byte keeps
// the threads that accept it; none left means the bytes can never become
// a valid document.
#pragma once
#include <optional>
#include <string_view>
#include <vector>

#include "sampling/json_grammar.h"

namespace moeflux::json_constraint {

struct Frame {
  NodeId node;         // kDocument for the bottom frame
  uint8_t state = 0;   // per kind (json_matcher.cpp)
  uint8_t aux = 0;     // string: UTF-8 bytes or hex digits still due; number: exponent digits
  uint8_t aux2 = 0;    // string: the lead byte / first hex digit those depend on
  uint8_t ws = 0;      // whitespace bytes at the current position
  uint32_t n = 0;      // literal offset, code points, number chars, items, property index
  bool operator==(const Frame&) const = default;
  auto operator<=>(const Frame&) const = default;
};

constexpr NodeId kDocument = UINT32_MAX;
// Whitespace bytes allowed at one position (indentation of pretty-printed
// output fits; a model cannot loop on whitespace forever).
constexpr uint8_t kMaxWhitespace = 64;

using Thread = std::vector<Frame>;
using State = std::vector<Thread>;

class Matcher {
 public:
  explicit Matcher(const Grammar& g);

  // Advances `in` by byte c into `out` (cleared first); false: no thread
  // accepts c.
  bool step(const State& in, uint8_t c, State& out) const;
  // The bytes read so far form a whole valid document.
  bool complete(const State& s) const;
  // Some byte can follow (false once the document is closed).
  bool can_continue(const State& s) const;
  State start() const;
  // When s is one thread inside a string, between characters: how many
  // more code points the string may take (any text of plain characters,
  // no quote, backslash or control byte, then fits); else nothing.
  std::optional<uint32_t> plain_string_room(const State& s) const;

  const Grammar& grammar() const { return g_; }

 private:
  void feed(Thread t, uint8_t c, State& out, int depth) const;
  void push_and_feed(Thread t, NodeId node, uint8_t c, State& out, int depth) const;
  bool accepting(const Frame& f) const;
  void child_done(Frame& parent) const;
  void feed_object(Thread& t, uint8_t c, State& out, int depth) const;
  void feed_array(Thread& t, uint8_t c, State& out, int depth) const;
  bool feed_string(Frame& f, const Node& n, uint8_t c) const;
  bool feed_number(Frame& f, const Node& n, uint8_t c) const;

  const Grammar& g_;
  // Work left in this step: nested anyOfs multiply the threads a byte
  // starts (2^depth), so a hostile schema could make one step endless.
  // Past the budget no more threads are made; the mask only gets stricter.
  // (Mutable: a Matcher belongs to one request, never shared by threads.)
  static constexpr int kStepBudget = 100000;
  mutable int budget_ = 0;
};

// A matcher with its state: feed whole pieces of text.
class JsonPrefix {
 public:
  explicit JsonPrefix(const Grammar& g) : m_(g), state_(m_.start()) {}
  // All or nothing: false leaves the state as it was.
  bool feed(std::string_view bytes);
  bool complete() const { return m_.complete(state_); }
  bool can_continue() const { return m_.can_continue(state_); }
  const State& state() const { return state_; }
  const Matcher& matcher() const { return m_; }

 private:
  Matcher m_;
  State state_;
};

}  // namespace moeflux::json_constraint
