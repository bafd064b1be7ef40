// Keeps pooled memory visible to ASan and Valgrind, as mimalloc's track.h
// does: a freed block is poisoned until it is handed out again, so a
// use-after-free inside a pool is reported instead of silently reading a link.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <cstddef>

#if SYDRA_ALLOC_ASAN
#include <sanitizer/asan_interface.h>
#endif
// Valgrind client requests cost a few instructions each even outside
// Valgrind, so they are compiled into checked builds only (the test command
// runs Valgrind over a checked build); release fast paths carry none.
#if SYDRA_ALLOC_CHECKED && __has_include(<valgrind/memcheck.h>) && !SYDRA_ALLOC_ASAN && !SYDRA_ALLOC_TSAN
#include <valgrind/memcheck.h>
#define SYDRA_ALLOC_VALGRIND 1
#else
#define SYDRA_ALLOC_VALGRIND 0
#endif

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace track {

// A block leaves the pool: the caller may now use it.
SYDRA_FAST_PATH void on_hand_out(void* p, std::size_t size) noexcept {
#if SYDRA_ALLOC_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
#if SYDRA_ALLOC_VALGRIND
  VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, 0);
#endif
  (void)p;
  (void)size;
}

// A block returns to the pool: any access by the caller is now a bug.
SYDRA_FAST_PATH void on_take_back(void* p, std::size_t size) noexcept {
#if SYDRA_ALLOC_ASAN
  ASAN_POISON_MEMORY_REGION(p, size);
#endif
#if SYDRA_ALLOC_VALGRIND
  VALGRIND_FREELIKE_BLOCK(p, 0);
  VALGRIND_MAKE_MEM_NOACCESS(p, size);
#endif
  (void)p;
  (void)size;
}

// Fresh slab memory that no block has been carved from yet.
inline void on_new_region(void* p, std::size_t size) noexcept {
#if SYDRA_ALLOC_ASAN
  ASAN_POISON_MEMORY_REGION(p, size);
#endif
#if SYDRA_ALLOC_VALGRIND
  VALGRIND_MAKE_MEM_NOACCESS(p, size);
#endif
  (void)p;
  (void)size;
}

// A slab goes back to the backing heap, which owns the bytes again.
inline void on_release_region(void* p, std::size_t size) noexcept {
#if SYDRA_ALLOC_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
#if SYDRA_ALLOC_VALGRIND
  VALGRIND_MAKE_MEM_UNDEFINED(p, size);
#endif
  (void)p;
  (void)size;
}

// Links inside freed blocks: the pool's own bookkeeping, read and written
// while the block is poisoned.
inline void link_access_begin([[maybe_unused]] void* p, [[maybe_unused]] std::size_t size) noexcept {
#if SYDRA_ALLOC_VALGRIND
  VALGRIND_MAKE_MEM_DEFINED(p, size);
#endif
}
inline void link_access_end([[maybe_unused]] void* p, [[maybe_unused]] std::size_t size) noexcept {
#if SYDRA_ALLOC_VALGRIND
  VALGRIND_MAKE_MEM_NOACCESS(p, size);
#endif
}

}  // namespace track
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
