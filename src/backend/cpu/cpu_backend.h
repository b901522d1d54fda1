// The CPU backend: graphs run on the host with the thread pool; weights are
// read where they lie (mapped files, expert slots), so nothing is uploaded.
#pragma once
#include "backend/backend.h"

namespace moeflux {

std::unique_ptr<Backend> make_cpu_backend(const BackendContext& ctx);

}  // namespace moeflux
