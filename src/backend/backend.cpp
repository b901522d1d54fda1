#include "backend/backend.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace moeflux {

std::shared_ptr<const StateSnapshot> BackendSession::snapshot_states() const {
  fail_as(ErrorKind::BadInput,
          "this backend cannot copy recurrent (linear-attention) layer state, which checkpoints of this model need");
}

void BackendSession::restore_states(const StateSnapshot&) {
  fail_as(ErrorKind::BadInput,
          "this backend cannot restore recurrent (linear-attention) layer state, which checkpoints of this model need");
}

std::vector<std::string> backend_names() { return {"cpu"}; }

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendContext& ctx) {
  if (name == "cpu") return make_cpu_backend(ctx);
  fail("unknown backend '{}' (built in: {})", name, fmt::join(backend_names(), ", "));
}

}  // namespace moeflux
