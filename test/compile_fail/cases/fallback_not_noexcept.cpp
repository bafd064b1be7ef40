// A fallback whose free may throw.
#include <sydra/alloc/modes.hpp>
namespace sa = sydra::alloc;
struct Heap {
  using Options = sa::NoOptions;
  Heap() = default;
  explicit Heap(const Options&) noexcept {}
  void* alloc(std::size_t, std::size_t) noexcept { return nullptr; }
  bool resize(void*, std::size_t, std::size_t, std::size_t) noexcept { return false; }
  void* remap(void*, std::size_t, std::size_t, std::size_t) noexcept { return nullptr; }
#ifdef CONTROL
  void free(void*, std::size_t, std::size_t) noexcept {}
#else
  void free(void*, std::size_t, std::size_t) {}
#endif
  sa::Allocator backing_allocator() noexcept { return sa::Allocator::of(*this); }
};
struct P {
  static constexpr const char* name = "p";
  using Shards = sa::NoShards;
  using Buckets = sa::NoBuckets;
  using Fallback = Heap;
};
int main() { return sa::BasicAllocatorHandle<P>().alloc(8, 8) == nullptr; }
