// Resource limits of the Jinja interpreter. Chat templates come from a
// downloaded model (tokenizer_config.json, GGUF metadata), so they are
// untrusted: like Python's sandboxed Jinja, moeflux must refuse a template
// that recurses, loops or allocates without bound, with a moeflux::Error
// naming the limit and the template position, never a crash or a hang.
//
// The defaults are far above what real chat templates need (they nest a few
// levels and run some thousands of steps per message) and far below what
// would exhaust a machine. Tests and fuzzers lower them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moeflux::jinja {

struct Limits {
  // Parse: nesting of statements and expressions (blocks inside blocks,
  // parentheses, operator chains such as 1 + 1 + ...), as tree depth.
  // Python's parser gives up at about 75 nested parentheses.
  uint32_t max_nesting = 128;
  // Render: nested macro calls. Python's recursion limit is 1000 frames;
  // each Jinja macro call takes several.
  uint32_t max_call_depth = 500;
  // Render: nesting while printing, comparing or serialising values (a list
  // of lists of ...), as Python's repr and json.dumps recurse.
  uint32_t max_value_depth = 512;
  // Render: work budget. One step per expression node, statement and loop
  // iteration, plus one per 32 bytes or per item that an operator, filter or
  // call consumes or produces, so that work on large values counts too.
  // 20M steps take 1-2 s in a release build; a 20,000-message conversation
  // through a real template takes well under 1M.
  uint64_t max_steps = 20'000'000;
  // Render: size of the rendered text (and of each captured block or macro
  // output), of any string value, and of any list or dict.
  size_t max_output_bytes = size_t{64} << 20;
  size_t max_string_bytes = size_t{64} << 20;
  size_t max_items = size_t{4} << 20;
  // Whatever the counts above, recursion stops while this much of the
  // thread's stack is still free (a debug or ASan build, or a thread with a
  // small stack, may run out before the counted limits are reached).
  size_t stack_reserve_bytes = size_t{256} << 10;
};

// The limits in force on this thread: those of the parse or render in
// progress, else the defaults. Builtins (filters, methods, value printing)
// check against these, so they need no extra parameter.
class LimitScope {
 public:
  explicit LimitScope(const Limits& limits);
  ~LimitScope();
  LimitScope(const LimitScope&) = delete;
  LimitScope& operator=(const LimitScope&) = delete;
  struct State;  // limits and step count of one scope (jinja_limits.cpp)

 private:
  State* prev_;
};

const Limits& active_limits();

// Each throws moeflux::Error naming the limit (the caller adds the position).
void check_string_size(size_t bytes);  // max_string_bytes
void check_items(size_t items);        // max_items
void check_output_size(size_t bytes);  // max_output_bytes
// For strings built in a loop: checks as they grow, before they are huge.
inline void check_growth(size_t bytes) {
  if (bytes > active_limits().max_string_bytes) check_string_size(bytes);
}
// Adds to the step budget; throws once max_steps is exceeded.
void charge_steps(uint64_t steps);
// Steps for work proportional to a size: one per 32 bytes / per item.
inline uint64_t bytes_cost(size_t bytes) { return bytes / 32; }

// RAII guard for one level of recursion; throws "maximum recursion depth
// exceeded" when `depth` would pass `max`, or when the thread's stack is
// nearly full. `what` names the limit in the message.
class DepthGuard {
 public:
  DepthGuard(uint32_t& depth, uint32_t max, const char* what);
  ~DepthGuard() { --depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;

 private:
  uint32_t& depth_;
};

// Throws when less than stack_reserve_bytes of this thread's stack is free.
void check_stack();

// Depth of value traversals (repr, ==, json) in progress on this thread.
uint32_t& value_depth();

}  // namespace moeflux::jinja
