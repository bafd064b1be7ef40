// A bare std::mutex as the bucket lock: the error says to wrap it.
#include <sydra/alloc/modes.hpp>
#include <mutex>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
  using Shards = sa::NoShards;
#ifdef CONTROL
  using Buckets = sa::MutexBuckets<sa::PlainLock<std::mutex>>;
#else
  using Buckets = sa::MutexBuckets<std::mutex>;
#endif
  using Fallback = sa::SystemHeap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
