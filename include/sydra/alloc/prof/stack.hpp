// A sampled allocation's call stack: return addresses, caller first.
//
// The unwinder is libgcc's _Unwind_Backtrace, which reads the .eh_frame
// tables every object carries, so the callers need no frame pointer (Debian
// builds without them). Measured on this project's test host (docs/profiling.md):
// 1.5-3.5 us for 20 frames; a sample from the same call site as this
// thread's last one, whose return addresses are all still where they were,
// reuses that unwind (a few loads). It does not allocate: glibc 2.35+ finds an
// address's object with _dl_find_object, and the first call, which may, is
// made when the first profiler is built (prime_unwinder), not in a malloc.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace prof {

inline constexpr unsigned max_frames = 64;

// Frames whose return address lies in [lo, hi) at the top of a stack are the
// allocator's own (libsydra-malloc.so sets it to its text), dropped.
struct TextRange {
  std::uintptr_t lo = 0;
  std::uintptr_t hi = 0;
};

// Writes up to max return addresses to out, outermost last, starting at the
// frame that returns to `from` (the caller of the function that captures),
// then skipping frames inside `own`. Returns how many.
unsigned capture_stack(std::uintptr_t* out, unsigned max, std::uintptr_t from, TextRange own) noexcept;

// How many of the calling thread's captures were served by its cache of the
// last unwind (lib/prof/stack.cpp): the same call site, the same return
// addresses still on the stack. For tests and measurements.
std::uint64_t cached_stacks() noexcept;

// The first unwind of a process may allocate (libgcc_s's lookups): done once
// here, from a profiler's constructor.
void prime_unwinder() noexcept;

// The text segment of the object that holds the calling code (for a malloc
// library: its own frames). Empty if it cannot be found.
TextRange own_text() noexcept;

}  // namespace prof
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
