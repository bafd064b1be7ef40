// A policy that forgets a part.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
  using Shards = sa::NoShards;
#ifdef CONTROL
  using Buckets = sa::NoBuckets;
#endif
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
