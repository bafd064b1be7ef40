// The small_pool policy with a table of its own that pools up to 4 KiB
// (16, 20, 24, ..., 3584, 4096: four steps per doubling), for running the
// contract and stress tests on a policy whose classes are not the seed's.
#pragma once

#include <sydra/alloc.hpp>

namespace sydra_test {

struct WideClassesPolicy : sydra::alloc::SmallPoolPolicy {
  static constexpr const char* name = "wide-classes";
  static constexpr sydra::alloc::SizeClassSpec classes{.min = 16, .steps_per_doubling = 4, .max = 4096};
};
using WideHandle = sydra::alloc::BasicAllocatorHandle<WideClassesPolicy>;
static_assert(WideHandle::Classes::max_size == 4096 && WideHandle::pooled);

}  // namespace sydra_test
