#include "graph/planner.h"

#include <algorithm>
#include <numeric>
#include <queue>

#include "core/error.h"

namespace moeflux {

std::vector<int> colour_intervals(const std::vector<Interval>& iv) {
  std::vector<uint32_t> order(iv.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return iv[a].start < iv[b].start; });
  std::vector<int> colour(iv.size(), -1);
  // (end, colour) of the intervals holding a colour, earliest end first.
  using Busy = std::pair<uint32_t, int>;
  std::priority_queue<Busy, std::vector<Busy>, std::greater<>> busy;
  std::priority_queue<int, std::vector<int>, std::greater<>> free_colours;
  int next = 0;
  for (uint32_t i : order) {
    while (!busy.empty() && busy.top().first < iv[i].start) {
      free_colours.push(busy.top().second);
      busy.pop();
    }
    int c;
    if (!free_colours.empty()) {
      c = free_colours.top();
      free_colours.pop();
    } else {
      c = next++;
    }
    colour[i] = c;
    busy.push({iv[i].end, c});
  }
  return colour;
}

int max_live(const std::vector<Interval>& iv) {
  std::vector<std::pair<uint32_t, int>> events;  // (point, +1 at start / -1 after end)
  for (auto& i : iv) {
    events.push_back({i.start * 2, +1});
    events.push_back({i.end * 2 + 1, -1});
  }
  std::sort(events.begin(), events.end());
  int live = 0, best = 0;
  for (auto& [_, d] : events) best = std::max(best, live += d);
  return best;
}

BufferPlan plan_buffers(const Graph& g) {
  const size_t n = g.buffers.size();
  constexpr uint32_t kNone = UINT32_MAX;
  std::vector<uint32_t> first_write(n, kNone), first_read(n, kNone), last_read(n, kNone);
  for (uint32_t i = 0; i < g.ops.size(); ++i) {
    for (uint32_t b : op_writes(g.ops[i])) {
      if (b >= n) fail("graph: op {} ({}) writes unknown buffer {}", i, op_name(g.ops[i]), b);
      if (first_write[b] == kNone) first_write[b] = i;
    }
    for (uint32_t b : op_reads(g.ops[i])) {
      if (b >= n) fail("graph: op {} ({}) reads unknown buffer {}", i, op_name(g.ops[i]), b);
      if (first_read[b] == kNone) first_read[b] = i;
      last_read[b] = i;
    }
  }
  BufferPlan plan;
  plan.slot_of.assign(n, -1);
  std::vector<Interval> intervals;
  std::vector<uint32_t> planned;
  for (uint32_t b = 0; b < n; ++b) {
    if (first_write[b] == kNone) continue;  // external: never aliased
    if (first_read[b] < first_write[b])
      fail("graph: buffer {} ('{}') is read by op {} before op {} writes it", b, g.buffers[b].name, first_read[b],
           first_write[b]);
    uint32_t end = last_read[b] == kNone || last_read[b] < first_write[b] ? first_write[b] : last_read[b];
    // The graph output is read after the last op.
    if (b == g.output.index) end = uint32_t(g.ops.size());
    intervals.push_back({first_write[b], end});
    planned.push_back(b);
  }
  const std::vector<int> colours = colour_intervals(intervals);
  for (size_t i = 0; i < planned.size(); ++i) {
    const uint32_t b = planned[i];
    const int c = colours[i];
    plan.slot_of[b] = c;
    if (size_t(c) >= plan.slot_bytes.size()) plan.slot_bytes.resize(size_t(c) + 1, 0);
    plan.slot_bytes[size_t(c)] = std::max(plan.slot_bytes[size_t(c)], g.buffers[b].bytes());
    plan.unplanned_bytes += g.buffers[b].bytes();
  }
  size_t off = 0;
  for (size_t s : plan.slot_bytes) {
    plan.slot_offset.push_back(off);
    off += (s + 63) & ~size_t(63);
  }
  plan.arena_bytes = off;
  return plan;
}

}  // namespace moeflux
