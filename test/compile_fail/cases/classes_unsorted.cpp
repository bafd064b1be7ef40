// A size-class table out of order.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
#ifdef CONTROL
  using Classes = sa::SizeClassList<16, 32, 48, 64>;
#else
  using Classes = sa::SizeClassList<16, 48, 32, 64>;
#endif
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
