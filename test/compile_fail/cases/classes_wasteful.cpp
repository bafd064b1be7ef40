// Classes so far apart that a request could waste more than half its block.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
#ifdef CONTROL
  using Classes = sa::SizeClassList<16, 32, 64, 128>;
#else
  using Classes = sa::SizeClassList<16, 32, 128>;
#endif
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
