// LibcHeap: glibc's heap through its own entry points, the fallback of a
// malloc built on a handle (malloc_override.hpp).
//
// A malloc that sydra-alloc provides replaces the `malloc` symbol, so a
// fallback calling std::malloc would call the handle again. __libc_malloc,
// __libc_memalign, __libc_realloc and __libc_free are glibc's allocator
// itself, exported under names programs do not call: large and over-aligned
// blocks get glibc's heap and cannot recurse (OwnedLibcHeap, behind a
// malloc library, also sets that heap's thresholds and trims it).
// The alternatives were an mmap per large block (a system call per request,
// and no reuse) or classes up to the largest request (no upper bound exists).
//
// Why not link those names, or look them up with dlsym(RTLD_NEXT): a process
// may link another malloc too. redis-server links libjemalloc.so.2, which
// exports its own malloc_usable_size; libtcmalloc_minimal.so.4 also exports
// __libc_malloc and friends. Either lookup then finds the other malloc's
// function and hands it a glibc block (redis crashed at start-up that way).
// Every entry point is therefore taken from the C library's own symbol table
// (pal/libc_symbols.hpp), whatever else the process links. glibc only.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/heap/system_heap.hpp>

#include <sydra/alloc/pal/libc_symbols.hpp>

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstring>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

namespace detail {

struct LibcEntryPoints {
  void* (*malloc)(std::size_t) noexcept;
  void* (*calloc)(std::size_t, std::size_t) noexcept;
  void* (*memalign)(std::size_t, std::size_t) noexcept;
  void* (*realloc)(void*, std::size_t) noexcept;
  void (*free)(void*) noexcept;
  std::size_t (*usable_size)(void*) noexcept;
};

// Resolved once, by the first fallback call of the process. The lookup
// never allocates, so the first malloc of a process can make it. A missing
// entry point is fatal: the fallback could not serve or size a block.
class LibcEntryPointTable {
 public:
  static const LibcEntryPoints& get() noexcept {
    if (SYDRA_LIKELY(state_.load(std::memory_order_acquire) == ready)) return table_;
    return resolve();
  }

 private:
  enum : int { unresolved = 0, resolving = 1, ready = 2 };

  template <class F>
  static void find(const char* name, F& out) noexcept {
    out = reinterpret_cast<F>(pal::find_libc_function(name));
    if (out == nullptr) report_misuse(Misuse::bad_request, "LibcHeap: an entry point is missing from the C library", nullptr, 0, 0);
  }

  SYDRA_SLOW_PATH static const LibcEntryPoints& resolve() noexcept {
    int s = unresolved;
    if (state_.compare_exchange_strong(s, resolving, std::memory_order_acq_rel)) {
      find("__libc_malloc", table_.malloc);
      find("__libc_calloc", table_.calloc);
      find("__libc_memalign", table_.memalign);
      find("__libc_realloc", table_.realloc);
      find("__libc_free", table_.free);
      find("malloc_usable_size", table_.usable_size);
      state_.store(ready, std::memory_order_release);
      return table_;
    }
    while (state_.load(std::memory_order_acquire) != ready) ::sched_yield();
    return table_;
  }

  static inline std::atomic<int> state_{unresolved};
  static inline LibcEntryPoints table_{};
};

inline const LibcEntryPoints& libc() noexcept { return LibcEntryPointTable::get(); }

}  // namespace detail

class LibcHeap {
 public:
  using Options = NoOptions;
  LibcHeap() = default;
  explicit LibcHeap(const Options&) noexcept {}

  void* alloc(std::size_t len, std::size_t align) noexcept {
    const detail::LibcEntryPoints& c = detail::libc();
    return align <= alignof(std::max_align_t) ? c.malloc(len) : c.memalign(align, len);
  }
  // calloc's block: glibc knows which pages are fresh from the kernel (a new
  // mmap, the top of a new heap) and clears only the rest.
  void* alloc_zeroed(std::size_t len, std::size_t align) noexcept {
    if (align <= alignof(std::max_align_t)) return detail::libc().calloc(1, len);
    void* p = detail::libc().memalign(align, len);
    if (p != nullptr) std::memset(p, 0, len);
    return p;
  }
  bool resize(void* mem, std::size_t, std::size_t, std::size_t new_len) noexcept { return usable_size(mem) >= new_len; }
  // Over-aligned blocks are not moved here: realloc keeps only malloc's
  // alignment, so the caller moves them by copy.
  void* remap(void* mem, std::size_t, std::size_t align, std::size_t new_len) noexcept {
    if (usable_size(mem) >= new_len) return mem;
    if (align > alignof(std::max_align_t)) return nullptr;
    return detail::libc().realloc(mem, new_len);
  }
  void* remap_unsized(void* mem, std::size_t new_len) noexcept { return detail::libc().realloc(mem, new_len); }
  void free(void* mem, std::size_t, std::size_t) noexcept { detail::libc().free(mem); }
  void free_unsized(void* mem) noexcept { detail::libc().free(mem); }
  std::size_t usable_size(const void* mem) noexcept { return detail::libc().usable_size(const_cast<void*>(mem)); }

  Allocator backing_allocator() noexcept { return Allocator::of(*this); }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
