// A class larger than a 64 KiB slab.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
#ifdef CONTROL
  static constexpr sa::SizeClassSpec classes{.min = 16, .steps_per_doubling = 2, .max = 65536};
#else
  static constexpr sa::SizeClassSpec classes{.min = 16, .steps_per_doubling = 2, .max = 131072};
#endif
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
