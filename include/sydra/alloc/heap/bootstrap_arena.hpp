// Memory for a malloc's own re-entry: what the process-wide handle of a
// malloc built on sydra-alloc (malloc_override.hpp) hands out while the
// thread building that handle calls malloc again.
//
// Building the handle may call into the C library, and an older C library
// allocates inside calls such as sysconf. Those calls come back to the malloc
// being built, on the building thread, which cannot wait for itself. They are
// served from a static bump arena instead: zero-filled (it lives in .bss),
// never reused, and recognised by address wherever a block can come back
// (BootstrapAware, around the malloc's fallback), where a free is a no-op.
// It is meant for a handful of small blocks: once it is full, a re-entrant
// request fails with ENOMEM like any other.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {

class BootstrapArena {
 public:
  static constexpr std::size_t capacity = 64 * 1024;

  // Each block is preceded by its length in the 16 bytes below it.
  static void* alloc(std::size_t len, std::size_t align) noexcept {
    align = std::max<std::size_t>(align, header);
    if (len > capacity || align > capacity) return nullptr;
    std::size_t used = used_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t start = (used + header + align - 1) & ~(align - 1);
      if (start + len > capacity) return nullptr;
      if (used_.compare_exchange_weak(used, start + len, std::memory_order_relaxed)) {
        std::memcpy(arena_ + start - header, &len, sizeof len);
        served_.fetch_add(1, std::memory_order_relaxed);
        return arena_ + start;
      }
    }
  }
  static bool owns(const void* p) noexcept {
    const auto a = reinterpret_cast<std::uintptr_t>(p), base = reinterpret_cast<std::uintptr_t>(arena_);
    return a - base < capacity;
  }
  static std::size_t size_of(const void* p) noexcept {
    std::size_t len = 0;
    std::memcpy(&len, static_cast<const unsigned char*>(p) - header, sizeof len);
    return len;
  }
  // Blocks handed out so far, for tests and the stats of a malloc's user.
  static std::size_t served() noexcept { return served_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t header = 16;
  alignas(64) static inline unsigned char arena_[capacity];
  static inline std::atomic<std::size_t> used_{0};
  static inline std::atomic<std::size_t> served_{0};
};

// A malloc's fallback that knows the arena: a block from it can reach the
// fallback's free, size and resize calls (no slab claims it), where it is
// never handed to the heap below.
template <class Heap>
class BootstrapAware : public Heap {
 public:
  using Heap::Heap;

  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    if (!BootstrapArena::owns(mem)) Heap::free(mem, len, align);
  }
  void free_unsized(void* mem) noexcept {
    if (!BootstrapArena::owns(mem)) Heap::free_unsized(mem);
  }
  std::size_t usable_size(const void* mem) noexcept {
    return BootstrapArena::owns(mem) ? BootstrapArena::size_of(mem) : Heap::usable_size(mem);
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    if (BootstrapArena::owns(mem)) return BootstrapArena::size_of(mem) >= new_len;
    return Heap::resize(mem, len, align, new_len);
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    if (BootstrapArena::owns(mem)) return moved_out(mem, new_len, align);
    return Heap::remap(mem, len, align, new_len);
  }
  void* remap_unsized(void* mem, std::size_t new_len) noexcept {
    if (BootstrapArena::owns(mem)) return moved_out(mem, new_len, alignof(std::max_align_t));
    return Heap::remap_unsized(mem, new_len);
  }

 private:
  void* moved_out(void* mem, std::size_t new_len, std::size_t align) noexcept {
    void* p = Heap::alloc(new_len, align);
    if (p != nullptr) std::memcpy(p, mem, std::min(new_len, BootstrapArena::size_of(mem)));
    return p;
  }
};

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
