// The policies the profiler's tests profile: small_pool's, and one with no
// pooled layer (every block the fallback's), each with HeapProfiling.
#pragma once

#include <sydra/alloc/modes.hpp>
#include <sydra/alloc/prof/profiling.hpp>

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
