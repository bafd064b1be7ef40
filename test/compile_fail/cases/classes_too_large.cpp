// A class so large that a 64 KiB slab holds fewer than 8 blocks.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
#ifdef CONTROL
  static constexpr sa::SizeClassSpec classes{.min = 16, .steps_per_doubling = 2, .max = 8192};
#else
  static constexpr sa::SizeClassSpec classes{.min = 16, .steps_per_doubling = 2, .max = 16384};
#endif
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
