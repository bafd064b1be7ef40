// MimallocHeap: mi_malloc_aligned / mi_realloc_aligned / mi_free, as the seed's
// mimalloc mode. The calls live in lib/mimalloc_heap.cpp, the only file that
// includes mimalloc.h, so consumers need no mimalloc headers.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/heap/system_heap.hpp>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

namespace detail {
void mi_load() noexcept;  // loads mimalloc (once per process)
void* mi_alloc(std::size_t len, std::size_t align) noexcept;
void* mi_remap(void* mem, std::size_t align, std::size_t new_len) noexcept;
std::size_t mi_usable(const void* mem) noexcept;
void mi_release(void* mem) noexcept;
}  // namespace detail

class MimallocHeap {
 public:
  using Options = NoOptions;
  // mimalloc is loaded when the heap is built, not at its first allocation:
  // a handle is built before the threads that use it, and loading it while
  // another thread is being created can leave that thread's copy of
  // mimalloc's thread-local heap pointer unset (glibc fills the static TLS
  // of a dlopen'ed library into the threads that exist when it runs), and
  // its first mi_malloc crashes on a null heap.
  MimallocHeap() noexcept { detail::mi_load(); }
  explicit MimallocHeap(const Options&) noexcept : MimallocHeap() {}

  void* alloc(std::size_t len, std::size_t align) noexcept { return detail::mi_alloc(len, normalize_align(align)); }
  // True only where the block already holds new_len (mi_usable_size).
  bool resize(void* mem, std::size_t, std::size_t, std::size_t new_len) noexcept {
    return detail::mi_usable(mem) >= new_len;
  }
  void* remap(void* mem, std::size_t, std::size_t align, std::size_t new_len) noexcept {
    return detail::mi_remap(mem, normalize_align(align), new_len);
  }
  void free(void* mem, std::size_t, std::size_t) noexcept { detail::mi_release(mem); }

  Allocator backing_allocator() noexcept { return Allocator::of(*this); }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
