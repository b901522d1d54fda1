// Runs a check once per compiled instruction set this CPU supports.
#pragma once
#include <gtest/gtest.h>
#include <hwy/targets.h>

namespace moeflux::quant::test {

// Runs fn once per instruction set this CPU supports (AVX-512, AVX2, SSE4,
// ...), so each compiled kernel variant is checked, not only the best one.
template <typename Fn>
void for_each_target(Fn fn) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    fn();
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace moeflux::quant::test
