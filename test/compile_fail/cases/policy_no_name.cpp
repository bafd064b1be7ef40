// A policy without a name.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
#ifdef CONTROL
  static constexpr const char* name = "p";
#endif
  using Shards = sa::NoShards;
  using Buckets = sa::NoBuckets;
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
