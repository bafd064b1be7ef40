// A policy whose fallback lacks remap() must be refused with an error that
// names FallbackPolicy. Built once with -DCONTROL (the complete heap, must
// compile) and once without (must fail).
#include <sydra/alloc/modes.hpp>

namespace sa = sydra::alloc;

struct HeapWithoutRemap {
  using Options = sa::NoOptions;
  HeapWithoutRemap() = default;
  explicit HeapWithoutRemap(const Options&) noexcept {}
  void* alloc(std::size_t, std::size_t) noexcept { return nullptr; }
  bool resize(void*, std::size_t, std::size_t, std::size_t) noexcept { return false; }
#ifdef CONTROL
  void* remap(void*, std::size_t, std::size_t, std::size_t) noexcept { return nullptr; }
#endif
  void free(void*, std::size_t, std::size_t) noexcept {}
  sa::Allocator backing_allocator() noexcept { return sa::Allocator::of(*this); }
};

struct BrokenPolicy {
  static constexpr const char* name = "broken";
  using Shards = sa::NoShards;
  using Buckets = sa::NoBuckets;
  using Fallback = HeapWithoutRemap;
};

int main() {
  sa::BasicAllocatorHandle<BrokenPolicy> handle;
  return handle.alloc(1, 1) == nullptr ? 0 : 1;
}
