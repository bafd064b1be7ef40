// A class too small to hold a free block's link and epoch.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
#ifdef CONTROL
  using Classes = sa::SizeClassList<16, 24, 32>;
#else
  using Classes = sa::SizeClassList<8, 16, 24, 32>;
#endif
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
