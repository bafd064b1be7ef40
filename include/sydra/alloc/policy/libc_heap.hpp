// LibcHeap: glibc's heap through its __libc_* entry points, the fallback of a
// malloc built on a handle (malloc_override.hpp).
//
// A malloc that sydra-alloc provides replaces the `malloc` symbol, so a
// fallback calling std::malloc would call the handle again. __libc_malloc,
// __libc_memalign, __libc_realloc and __libc_free are glibc's allocator
// itself, exported under names nobody interposes: large and over-aligned
// blocks get glibc's mmap threshold, trimming and arenas, and cannot recurse.
// The alternatives were an mmap per large block (a system call per request,
// and no reuse) or classes up to the largest request (no upper bound exists).
// glibc only; malloc_usable_size, which glibc exports under no other name, is
// looked up once with dlsym(RTLD_NEXT).
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/policy/system_heap.hpp>

#include <dlfcn.h>

#include <atomic>
#include <cstddef>

extern "C" {
void* __libc_malloc(std::size_t len) noexcept;
void* __libc_memalign(std::size_t align, std::size_t len) noexcept;
void* __libc_realloc(void* mem, std::size_t len) noexcept;
void __libc_free(void* mem) noexcept;
}

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

namespace detail {
// glibc's malloc_usable_size, whichever object exports `malloc_usable_size`
// first. Resolved on first use: dlsym may allocate only on failure, and a
// failure is fatal (the fallback could not size its blocks).
inline std::size_t libc_usable_size(void* mem) noexcept {
  using Fn = std::size_t (*)(void*) noexcept;
  static std::atomic<Fn> fn{nullptr};
  Fn f = fn.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "malloc_usable_size"));
    if (f == nullptr) report_misuse(Misuse::bad_request, "LibcHeap: glibc's malloc_usable_size not found", mem, 0, 0);
    fn.store(f, std::memory_order_release);
  }
  return f(mem);
}
}  // namespace detail

class LibcHeap {
 public:
  using Options = NoOptions;
  LibcHeap() = default;
  explicit LibcHeap(const Options&) noexcept {}

  void* alloc(std::size_t len, std::size_t align) noexcept {
    return align <= alignof(std::max_align_t) ? __libc_malloc(len) : __libc_memalign(align, len);
  }
  bool resize(void* mem, std::size_t, std::size_t, std::size_t new_len) noexcept { return usable_size(mem) >= new_len; }
  // Over-aligned blocks are not moved here: realloc keeps only malloc's
  // alignment, so the caller moves them by copy.
  void* remap(void* mem, std::size_t, std::size_t align, std::size_t new_len) noexcept {
    if (usable_size(mem) >= new_len) return mem;
    if (align > alignof(std::max_align_t)) return nullptr;
    return __libc_realloc(mem, new_len);
  }
  void* remap_unsized(void* mem, std::size_t new_len) noexcept { return __libc_realloc(mem, new_len); }
  void free(void* mem, std::size_t, std::size_t) noexcept { __libc_free(mem); }
  void free_unsized(void* mem) noexcept { __libc_free(mem); }
  std::size_t usable_size(const void* mem) noexcept { return detail::libc_usable_size(const_cast<void*>(mem)); }

  Allocator backing_allocator() noexcept { return Allocator::of(*this); }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
