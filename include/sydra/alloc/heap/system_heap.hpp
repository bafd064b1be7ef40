// SystemHeap: the C library's heap, as a FallbackPolicy's innermost layer.
#pragma once

#include <sydra/alloc/allocator.hpp>

#include <cstdlib>
#include <malloc.h>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct NoOptions {};

class SystemHeap {
 public:
  using Options = NoOptions;
  SystemHeap() = default;
  explicit SystemHeap(const Options&) noexcept {}

  // Preconditions for all four: a valid request (request.hpp), and mem from
  // this heap with the len/align it was allocated or last resized with.
  void* alloc(std::size_t len, std::size_t align) noexcept {
    if (align <= alignof(std::max_align_t)) return std::malloc(len);
    void* p = nullptr;
    return ::posix_memalign(&p, align, len) == 0 ? p : nullptr;
  }
  bool resize(void* mem, std::size_t, std::size_t, std::size_t new_len) noexcept {
    return ::malloc_usable_size(mem) >= new_len;
  }
  // realloc keeps only malloc's alignment, so over-aligned blocks move by copy
  // in the caller rather than here.
  void* remap(void* mem, std::size_t, std::size_t align, std::size_t new_len) noexcept {
    if (::malloc_usable_size(mem) >= new_len) return mem;
    if (align > alignof(std::max_align_t)) return nullptr;
    return std::realloc(mem, new_len);
  }
  void free(void* mem, std::size_t, std::size_t) noexcept { std::free(mem); }

  // For frees whose length the caller does not know (a malloc built on a handle).
  std::size_t usable_size(const void* mem) noexcept { return ::malloc_usable_size(const_cast<void*>(mem)); }
  void free_unsized(void* mem) noexcept { std::free(mem); }

  Allocator backing_allocator() noexcept { return Allocator::of(*this); }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
