#include "backend/backend.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace moeflux {

void BackendSession::export_states(int, std::vector<uint8_t>&) const {
  fail("saving session state is not supported by this backend");
}
void BackendSession::import_states(int, std::span<const uint8_t>) {
  fail("loading session state is not supported by this backend");
}

std::vector<std::string> backend_names() { return {"cpu"}; }

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendContext& ctx) {
  if (name == "cpu") return make_cpu_backend(ctx);
  fail("unknown backend '{}' (built in: {})", name, fmt::join(backend_names(), ", "));
}

}  // namespace moeflux
