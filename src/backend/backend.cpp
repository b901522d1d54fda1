#include "backend/backend.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#if MOEFLUX_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace moeflux {

std::shared_ptr<const StateSnapshot> BackendSession::snapshot_states() const {
  fail_as(ErrorKind::BadInput,
          "this backend cannot copy recurrent (linear-attention) layer state, which checkpoints of this model need");
}

void BackendSession::restore_states(const StateSnapshot&) {
  fail_as(ErrorKind::BadInput,
          "this backend cannot restore recurrent (linear-attention) layer state, which checkpoints of this model need");
}

void BackendSession::export_states(int, std::vector<uint8_t>&) const {
  fail("saving session state is not supported by this backend");
}
void BackendSession::import_states(int, std::span<const uint8_t>) {
  fail("loading session state is not supported by this backend");
}

void Backend::run_batch(const Graph&, const BufferPlan&, std::span<BackendSession* const>, std::span<const int32_t>,
                        std::span<const int32_t>, std::span<float>) {
  fail_as(ErrorKind::Internal, "backend '{}' does not batch the steps of several sessions", name());
}

std::vector<std::string> backend_names() {
#if MOEFLUX_HAVE_CUDA
  return {"cpu", "cuda"};
#else
  return {"cpu"};
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendContext& ctx) {
  if (name == "cpu") return make_cpu_backend(ctx);
#if MOEFLUX_HAVE_CUDA
  if (name == "cuda") return make_cuda_backend(ctx);
#else
  if (name == "cuda") fail("this build of moeflux has no CUDA backend (nvcc was not found when it was built): use --device cpu");
#endif
  fail("unknown backend '{}' (built in: {})", name, fmt::join(backend_names(), ", "));
}

std::string backend_unavailable_reason(const std::string& name) {
  if (name == "cpu") return "";
#if MOEFLUX_HAVE_CUDA
  if (name == "cuda") return cuda_unavailable_reason();
#endif
  return fmt::format("backend '{}' is not built in (built in: {})", name, fmt::join(backend_names(), ", "));
}

std::string backend_for_device(const std::string& device) {
  if (device == "cpu" || device == "cuda") return device;
  if (device == "auto") return backend_unavailable_reason("cuda").empty() ? "cuda" : "cpu";
  fail("device '{}' is not one of cpu, cuda or auto", device);
}

}  // namespace moeflux
