// Regions that cannot decommit-or-refuse (no decommit member).
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct MyRegions {
  struct Options {};
  MyRegions() = default;
  explicit MyRegions(const Options&) noexcept {}
  void* reserve(std::size_t n) noexcept { return sa::pal::reserve(n, sa::slab_bytes); }
  void release(void* p, std::size_t n) noexcept { sa::pal::release(p, n); }
#ifdef CONTROL
  bool decommit(void*, std::size_t) noexcept { return false; }
#endif
};
struct P {
  static constexpr const char* name = "p";
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::SystemHeap;
  using Regions = MyRegions;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
