// The policies the profiler's tests profile: small_pool's, and one with no
// pooled layer (every block the fallback's), each with HeapProfiling.
#pragma once

#include <sydra/alloc/modes.hpp>
#include <sydra/alloc/prof/profiling.hpp>

// A call site a test names by its symbol: one frame of its own, whatever the
// optimiser does (GCC's noipa: no inlining, cloning, splitting or merging of
// identical functions; clang merges none without the linker's --icf).
#if defined(__clang__)
#define SYDRA_TEST_SITE extern "C" __attribute__((noinline, used))
#else
#define SYDRA_TEST_SITE extern "C" __attribute__((noipa, used))
#endif

namespace sydra_test {

struct ProfiledPoolPolicy : sydra::alloc::SmallPoolPolicy {
  using Profiling = sydra::alloc::HeapProfiling;
};
struct ProfiledFallbackPolicy : sydra::alloc::DefaultPolicy {
  using Profiling = sydra::alloc::HeapProfiling;
};
using ProfiledPool = sydra::alloc::BasicAllocatorHandle<ProfiledPoolPolicy>;
using ProfiledFallback = sydra::alloc::BasicAllocatorHandle<ProfiledFallbackPolicy>;

}  // namespace sydra_test
