// snapshot_stats() on a handle whose layers keep no stats.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct P {
  static constexpr const char* name = "p";
  using Shards = sa::NoShards;
  using Buckets = sa::NoBuckets;
#ifdef CONTROL
  using Fallback = sa::Tracked<sa::SystemHeap>;
#else
  using Fallback = sa::SystemHeap;
#endif
};
int main() {
  sa::BasicAllocatorHandle<P> h;
  return static_cast<int>(h.snapshot_stats().fallback.allocs);
}
