// Buffer planning by interval colouring. A buffer's live interval is
// [first op that writes it, last op that reads it] (a value never read lives
// at its write only). Buffers that no op writes are external (inputs) and are
// never aliased. Intervals are taken in order of start (ties by id, so the
// plan is deterministic); colours whose interval ended before the start are
// freed; the lowest free colour is taken. For interval graphs this greedy
// order is optimal: colours used == the largest number live at once.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "graph/ir.h"

namespace moeflux {

struct Interval {
  uint32_t start, end;  // inclusive op indices
};

// Colour per interval (same order as input).
std::vector<int> colour_intervals(const std::vector<Interval>& intervals);
// Largest number of intervals containing one point.
int max_live(const std::vector<Interval>& intervals);

struct BufferPlan {
  std::vector<int32_t> slot_of;     // per buffer: slot index, or -1 for external buffers
  std::vector<size_t> slot_bytes;   // per slot: the largest buffer sharing it
  std::vector<size_t> slot_offset;  // per slot: byte offset in one arena (64-byte aligned)
  size_t arena_bytes = 0;
  size_t unplanned_bytes = 0;       // what one buffer per id would take
};

BufferPlan plan_buffers(const Graph& g);

}  // namespace moeflux
