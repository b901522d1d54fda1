#include "core/mapping_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/error.h"

namespace moeflux {

namespace {

// The registry the handler searches: a fixed array, so that the handler
// never meets a lock or memory being freed. A model has a handful of files
// (sharded checkpoints a few dozen); the slots bound the guarded mappings
// alive at once, not over the process's life.
constexpr int kSlots = 1024;

enum : int { kFree = 0, kBusy = 1, kActive = 2 };

struct Slot {
  std::atomic<int> state{kFree};
  std::atomic<uintptr_t> begin{0}, end{0};  // end: page-aligned up, as the kernel maps it
  std::atomic<uint64_t> fault{MappingGuard::kNoFault};
};

Slot g_slots[kSlots];
uintptr_t g_page = 4096;
struct sigaction g_previous {};
std::once_flag g_installed;

static_assert(std::atomic<uintptr_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<int>::is_always_lock_free,
              "the SIGBUS handler needs lock-free atomics");

// Passes a fault that is not ours on as if this handler were not there.
void chain(int sig, siginfo_t* info, void* ctx) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, info, ctx);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  // Default action: restore it and return; the faulting load runs again
  // and the kernel delivers SIGBUS with the default action (core dump).
  // A SIGBUS that kill() sent does not recur by itself: raise it again.
  signal(sig, SIG_DFL);
  if (info->si_code <= 0) raise(sig);
}

void on_sigbus(int sig, siginfo_t* info, void* ctx) {
  const int saved_errno = errno;
  // si_code > 0: raised by the kernel for a load (si_addr is the address);
  // <= 0: sent by a process, whose si_addr means nothing.
  if (info->si_code > 0) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
    for (Slot& s : g_slots) {
      if (s.state.load(std::memory_order_acquire) != kActive) continue;
      const uintptr_t begin = s.begin.load(std::memory_order_relaxed), end = s.end.load(std::memory_order_relaxed);
      if (a < begin || a >= end) continue;
      const uintptr_t page = a & ~(g_page - 1);
      // Zeros from the faulting page to the end: a shrunk file lost its
      // tail, so one patch stops every later fault in this mapping.
      void* p = mmap(reinterpret_cast<void*>(page), end - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                     -1, 0);
      if (p == MAP_FAILED) break;  // cannot patch: let the fault take its course
      uint64_t off = page - begin, cur = s.fault.load(std::memory_order_relaxed);
      while (off < cur && !s.fault.compare_exchange_weak(cur, off, std::memory_order_release)) {
      }
      errno = saved_errno;
      return;  // the load restarts and reads zeros
    }
  }
  errno = saved_errno;
  chain(sig, info, ctx);
}

void install() {
  g_page = uintptr_t(sysconf(_SC_PAGESIZE));
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  // SA_ONSTACK: a thread with an alternate stack (e.g. after a stack
  // overflow handler set one up) uses it; SA_NODEFER is not set, so a fault
  // inside the handler itself takes the default action instead of looping.
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_previous) != 0) fail("cannot install the SIGBUS handler: {}", std::strerror(errno));
}

}  // namespace

MappingGuard::MappingGuard(const void* base, size_t size) {
  std::call_once(g_installed, install);
  const uintptr_t b = reinterpret_cast<uintptr_t>(base);
  if (b % g_page) fail("MappingGuard: mapping at {:#x} is not page-aligned", b);
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kBusy, std::memory_order_acquire)) continue;
    g_slots[i].begin.store(b, std::memory_order_relaxed);
    g_slots[i].end.store((b + size + g_page - 1) & ~(g_page - 1), std::memory_order_relaxed);
    g_slots[i].fault.store(kNoFault, std::memory_order_relaxed);
    g_slots[i].state.store(kActive, std::memory_order_release);
    slot_ = i;
    return;
  }
  fail("MappingGuard: more than {} guarded mappings at once", kSlots);
}

MappingGuard::~MappingGuard() { release(); }

MappingGuard& MappingGuard::operator=(MappingGuard&& o) noexcept {
  if (this != &o) {
    release();
    slot_ = o.slot_;
    o.slot_ = -1;
  }
  return *this;
}

void MappingGuard::release() {
  if (slot_ < 0) return;
  // Released before the owner unmaps: from here on a fault at these
  // addresses is not ours (and a load from an unmapped range is a bug).
  g_slots[slot_].state.store(kBusy, std::memory_order_release);
  g_slots[slot_].begin.store(0, std::memory_order_relaxed);
  g_slots[slot_].end.store(0, std::memory_order_relaxed);
  g_slots[slot_].state.store(kFree, std::memory_order_release);
  slot_ = -1;
}

uint64_t MappingGuard::fault_offset() const {
  return slot_ < 0 ? kNoFault : g_slots[slot_].fault.load(std::memory_order_acquire);
}

}  // namespace moeflux
