// Shards names something that is not a shard recipe (here, the features
// aggregate instead of ThreadShards<...>).
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
#ifdef CONTROL
  using Shards = sa::ThreadShards<sa::ShardFeatures{.count = 2}>;
#else
  using Shards = sa::ShardFeatures;
#endif
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
