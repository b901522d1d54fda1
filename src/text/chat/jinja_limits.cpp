#include "text/chat/jinja_limits.h"

#include <pthread.h>

#include <cstdint>

#include "core/error.h"

namespace moeflux::jinja {

struct LimitScope::State {
  Limits limits;
  uint64_t steps = 0;
  bool counting = false;  // charge_steps only counts inside a scope
  State* prev = nullptr;
};

namespace {

thread_local LimitScope::State* t_state = nullptr;
thread_local uint32_t t_value_depth = 0;

LimitScope::State& state() {
  thread_local LimitScope::State defaults;
  return t_state ? *t_state : defaults;
}

// Lowest usable address of this thread's stack (it grows down), or 0 when
// the platform does not say. Computed once per thread: the main thread's
// answer costs a read of /proc/self/maps.
uintptr_t stack_low() {
  thread_local uintptr_t low = [] {
    uintptr_t l = 0;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      size_t size = 0;
      if (pthread_attr_getstack(&attr, &addr, &size) == 0 && size > 0) l = reinterpret_cast<uintptr_t>(addr);
      pthread_attr_destroy(&attr);
    }
    return l;
  }();
  return low;
}

}  // namespace

LimitScope::LimitScope(const Limits& limits) : prev_(t_state) {
  auto* s = new State{limits, 0, true, prev_};
  t_state = s;
}

LimitScope::~LimitScope() {
  State* s = t_state;
  t_state = prev_;
  delete s;
}

const Limits& active_limits() { return state().limits; }

void check_string_size(size_t bytes) {
  size_t max = state().limits.max_string_bytes;
  if (bytes > max) fail("string too long: {} bytes, the limit is {} (max_string_bytes)", bytes, max);
}

void check_items(size_t items) {
  size_t max = state().limits.max_items;
  if (items > max) fail("list too long: {} items, the limit is {} (max_items)", items, max);
}

void check_output_size(size_t bytes) {
  size_t max = state().limits.max_output_bytes;
  if (bytes > max) fail("output too long: {} bytes, the limit is {} (max_output_bytes)", bytes, max);
}

void charge_steps(uint64_t steps) {
  LimitScope::State& s = state();
  if (!s.counting) return;
  s.steps += steps;
  if (s.steps > s.limits.max_steps)
    fail("template ran too long: more than {} steps (max_steps)", s.limits.max_steps);
}

void check_stack() {
  uintptr_t low = stack_low();
  if (!low) return;
  // The frame address is the real stack even under ASan's fake stacks.
  auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  size_t reserve = state().limits.stack_reserve_bytes;
  if (here < low + reserve)
    fail("maximum recursion depth exceeded: less than {} KiB of the thread's stack left (stack_reserve_bytes)",
         reserve >> 10);
}

DepthGuard::DepthGuard(uint32_t& depth, uint32_t max, const char* what) : depth_(depth) {
  if (depth >= max) fail("maximum recursion depth exceeded: more than {} {}", max, what);
  check_stack();
  ++depth_;
}

uint32_t& value_depth() { return t_value_depth; }

}  // namespace moeflux::jinja
