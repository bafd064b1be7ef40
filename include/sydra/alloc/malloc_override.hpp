// Any policy, any malloc: the C allocation API and every C++ operator
// new/delete over one process-wide BasicAllocatorHandle<Policy>.
//
//   // my_malloc.cpp, the only source of a shared library:
//   #include <sydra/alloc/malloc_override.hpp>
//   SYDRA_ALLOC_DEFINE_MALLOC(sydra::alloc::MallocPolicy<MyPolicy>)
//
//   # meson.build (see examples/meson.build, custom_malloc):
//   shared_library('my-malloc', 'my_malloc.cpp', dependencies: sydra_alloc_malloc_dep,
//                  gnu_symbol_visibility: 'hidden')
//
// then LD_PRELOAD=libmy-malloc.so any-program, or link it first. libsydra-malloc.so
// (lib/malloc/) is this over the configured mode's policy.
//
// What a process needs from a malloc, and where this file gives it:
//   - usable before main and from the loader's first allocation: the handle
//     lives in static storage and is built by the first call (Process::get),
//     with no constructor order to depend on, and never destroyed (blocks are
//     freed after every destructor ran); what the building thread allocates
//     while it builds comes from the BootstrapArena;
//   - fork() in a threaded process: the handle registers with the fork guard
//     (detail/fork_guard.hpp) as every handle does, whose pthread_atfork
//     handlers take every lock before the fork and release them in both
//     processes;
//   - thread exit: the thread registry's exit hook (thread_registry.cpp)
//     gives back a thread's shard and cached blocks;
//   - errno = ENOMEM on every failure, EINVAL for a bad alignment where POSIX
//     says so; malloc(0) returns a unique block and realloc(p, 0) frees p and
//     returns nullptr, as glibc does; every block is aligned to 16
//     (alignof(std::max_align_t)) or more;
//   - SYDRA_ALLOC_STATS and SYDRA_ALLOC_PROF: the stats at exit, heap
//     profiles (malloc/reports.hpp).
// A policy's Fallback must never call malloc (MallocPolicy's OwnedLibcHeap calls
// glibc's __libc_* entry points) and must provide usable_size(),
// free_unsized() and remap_unsized().
#pragma once

#include <sydra/alloc/heap/bootstrap_arena.hpp>
#include <sydra/alloc/handle.hpp>
#include <sydra/alloc/heap/tracked.hpp>
#include <sydra/alloc/heap/owned_libc_heap.hpp>
#include <sydra/alloc/malloc/reports.hpp>
#include <sydra/alloc/prof/profiling.hpp>

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// P with a fallback that cannot recurse into the malloc it serves: glibc's
// own heap, with per-thread counters that count usable bytes (free() knows
// no length) and, in checked builds, the registry that diagnoses foreign and
// double frees of fallback blocks.
// BootstrapAware outermost: the blocks served while the handle was being
// built reach the fallback's free and are dropped there, before any counter
// or registry sees them. Heap: LibcHeap, or (tests) a heap derived from it.
template <class Heap>
using MallocFallback = detail::BootstrapAware<
    Tracked<Checked<Heap, checked, /*NodesFromBacking=*/true>, TrackedFeatures{.usable_bytes = true}>>;

// Every malloc carries the profiler: SYDRA_ALLOC_PROF turns it on at run time.
template <class P>
struct MallocPolicy : P {
  using Fallback = MallocFallback<OwnedLibcHeap>;
  using Profiling = HeapProfiling;
};

namespace malloc_detail {

inline constexpr std::size_t malloc_align = alignof(std::max_align_t);

template <class Policy>
class Process {
 public:
  using Handle = BasicAllocatorHandle<Policy>;

  // The handle, built by the first call from any thread. A thread that finds
  // another one building it waits. The builder allocates from LibcHeap, not
  // from malloc, but what it calls may call malloc (an older C library
  // allocates in sysconf): for that thread, while it builds, get() is
  // nullptr and the request is served from the BootstrapArena.
  SYDRA_FAST_PATH static Handle* get() noexcept {
    if (SYDRA_LIKELY(state_.load(std::memory_order_acquire) == ready)) return handle();
    return init();
  }

  // ---- The C API -------------------------------------------------------------
  static void* malloc(std::size_t n) noexcept { return out_of(allocate(n, malloc_align)); }
  static void free(void* p) noexcept {
    if (p == nullptr) return;
    if (SYDRA_LIKELY(state_.load(std::memory_order_acquire) == ready)) return handle()->free_unsized(p);
    free_unready(p);  // out of line: the path above keeps no frame
  }
  static void* calloc(std::size_t count, std::size_t size) noexcept {
    std::size_t n = 0;
    if (__builtin_mul_overflow(count, size, &n)) return fail();
    if (n == 0) n = 1;
    Handle* h = get();
    return out_of(h != nullptr ? h->alloc_zeroed(n, malloc_align) : detail::BootstrapArena::alloc(n, malloc_align));
  }
  static void* realloc(void* p, std::size_t n) noexcept {
    if (p == nullptr) return malloc(n);
    if (n == 0) {  // glibc: frees the block and returns nullptr
      free(p);
      return nullptr;
    }
    if (Handle* h = get()) return out_of(h->remap_unsized(p, n));
    void* q = detail::BootstrapArena::alloc(n, malloc_align);  // re-entrant: p is an arena block too
    if (q != nullptr) std::memcpy(q, p, std::min(n, detail::BootstrapArena::size_of(p)));
    return out_of(q);
  }
  static void* reallocarray(void* p, std::size_t count, std::size_t size) noexcept {
    std::size_t n = 0;
    if (__builtin_mul_overflow(count, size, &n)) return fail();
    return realloc(p, n);
  }
  // POSIX: alignment a power of two and a multiple of sizeof(void*), else
  // EINVAL; ENOMEM returned (not set in errno) when memory is short.
  static int posix_memalign(void** out, std::size_t align, std::size_t n) noexcept {
    if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
    const int saved = errno;
    void* p = aligned(align, n);
    errno = saved;
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
  }
  // glibc: any power of two (EINVAL otherwise).
  static void* aligned_alloc(std::size_t align, std::size_t n) noexcept {
    if (align == 0 || (align & (align - 1)) != 0) {
      errno = EINVAL;
      return nullptr;
    }
    return aligned(align, n);
  }
  // glibc: an alignment that is not a power of two is rounded up to one.
  static void* memalign(std::size_t align, std::size_t n) noexcept {
    if (align > max_request / 2 + 1) return fail();
    if ((align & (align - 1)) != 0) align = std::size_t{1} << (64 - __builtin_clzll(align));
    return aligned(align, n);
  }
  static void* valloc(std::size_t n) noexcept { return aligned(page(), n); }
  static void* pvalloc(std::size_t n) noexcept {
    const std::size_t pg = page();
    if (n > max_request - pg) return fail();
    return aligned(pg, n == 0 ? pg : (n + pg - 1) & ~(pg - 1));
  }
  static std::size_t usable_size(void* p) noexcept {
    if (p == nullptr) return 0;
    if (Handle* h = get()) return h->usable_size(p);
    return detail::BootstrapArena::size_of(p);
  }

  // ---- C++ -------------------------------------------------------------------
  // The program's new handler is called while memory is short; with none,
  // operator new throws std::bad_alloc and the nothrow forms return null. A
  // handler that throws from a nothrow new ends the program (the nothrow
  // forms catch nothing, see program_function), as with mimalloc.
  static void* new_or_throw(std::size_t n, std::size_t align) {
    for (;;) {
      if (void* p = allocate(n, align)) return p;
      if (!call_new_handler()) throw_bad_alloc();
    }
  }
  static void* new_nothrow(std::size_t n, std::size_t align) noexcept {
    for (;;) {
      if (void* p = allocate(n, align)) return p;
      if (!call_new_handler()) return nullptr;
    }
  }
  static void sized_delete(void* p, std::size_t n, std::size_t align) noexcept {
    if (p == nullptr) return;
    if (Handle* h = get()) h->free(p, n == 0 ? 1 : n, align < malloc_align ? malloc_align : align);
  }

 private:
  enum : int { idle = 0, building = 1, ready = 2 };

  static Handle* handle() noexcept { return std::launder(reinterpret_cast<Handle*>(storage_)); }

  SYDRA_SLOW_PATH static Handle* init() noexcept {
    int s = idle;
    if (state_.compare_exchange_strong(s, building, std::memory_order_acq_rel)) {
      builder_.store(::pthread_self(), std::memory_order_relaxed);
      typename Handle::Options o;
      o.print_leaks = false;  // never destroyed: the process's exit is not a leak
      if constexpr (Handle::profiled) o.profiling = Reports<Policy>::profiling_options();
      ::new (static_cast<void*>(storage_)) Handle(o);
      state_.store(ready, std::memory_order_release);
      Reports<Policy>::start(handle());
      return handle();
    }
    if (s == building && ::pthread_equal(builder_.load(std::memory_order_relaxed), ::pthread_self()) != 0) {
      return nullptr;  // the builder, re-entered
    }
    while (state_.load(std::memory_order_acquire) != ready) ::sched_yield();
    return handle();
  }

  // The library carries its own static copy of libstdc++ (so that a C
  // program loads none, lib/malloc/meson.build). Its std::get_new_handler
  // would see only its own, never-set handler, and an exception its
  // __cxa_throw raised and the program's libstdc++ caught would leave the
  // program's std::uncaught_exceptions() wrong. So the handler and the throw
  // are the program's libstdc++'s whenever one is loaded, looked up when
  // memory is already short, never on a path that succeeds; for the same
  // reason nothing here catches.
  template <class F>
  static F program_function(const char* mangled, F own) noexcept {
    auto f = reinterpret_cast<F>(::dlsym(RTLD_DEFAULT, mangled));
    return f != nullptr ? f : own;
  }
  static bool call_new_handler() {
    using Get = std::new_handler (*)() noexcept;
    const std::new_handler h = program_function<Get>("_ZSt15get_new_handlerv", &std::get_new_handler)();
    if (h == nullptr) return false;
    h();
    return true;
  }
  [[noreturn]] static void throw_bad_alloc() {
    using Throw = void (*)();
    if (Throw t = program_function<Throw>("_ZSt17__throw_bad_allocv", nullptr)) t();
    throw std::bad_alloc();
  }

 public:
  // sydra_alloc_prof_dump(path): the live heap's profile to path (nullptr:
  // SYDRA_ALLOC_PROF's PATH). 0 on success; -1 when profiling is off or the
  // file could not be written.
  static int prof_dump(const char* path) noexcept { return Reports<Policy>::prof_dump(get(), path); }

 private:
  static void* out_of(void* p) noexcept { return p != nullptr ? p : fail(); }
  SYDRA_SLOW_PATH static void free_unready(void* p) noexcept {
    if (Handle* h = get()) h->free_unsized(p);  // else a re-entrant free while building: an arena block, kept
  }
  static void* fail() noexcept {
    errno = ENOMEM;
    return nullptr;
  }
  static void* aligned(std::size_t align, std::size_t n) noexcept { return out_of(allocate(n, align)); }
  // Every allocation but calloc's: at least 1 byte, at least malloc's alignment.
  SYDRA_FAST_PATH static void* allocate(std::size_t n, std::size_t align) noexcept {
    if (n == 0) n = 1;
    if (align < malloc_align) align = malloc_align;
    if (Handle* h = get()) return h->alloc(n, align);
    return detail::BootstrapArena::alloc(n, align);
  }
  static std::size_t page() noexcept { return pal::page_bytes; }

  static inline std::atomic<int> state_{idle};
  static inline std::atomic<pthread_t> builder_{};
  alignas(Handle) static inline unsigned char storage_[sizeof(Handle)];
};

}  // namespace malloc_detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc

#define SYDRA_ALLOC_MALLOC_EXPORT extern "C" __attribute__((visibility("default")))
#define SYDRA_ALLOC_NEW_EXPORT __attribute__((visibility("default")))

// Defines malloc, free, calloc, realloc, reallocarray, posix_memalign,
// aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size and every
// operator new/delete over BasicAllocatorHandle<Policy>. Once per program.
#define SYDRA_ALLOC_DEFINE_MALLOC(...)                                                                              \
  namespace sydra_alloc_malloc_override {                                                                          \
  using P = ::sydra::alloc::malloc_detail::Process<__VA_ARGS__>;                                                  \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT void* malloc(std::size_t n) noexcept { return sydra_alloc_malloc_override::P::malloc(n); } \
  SYDRA_ALLOC_MALLOC_EXPORT void free(void* p) noexcept { sydra_alloc_malloc_override::P::free(p); }                   \
  SYDRA_ALLOC_MALLOC_EXPORT int sydra_alloc_prof_dump(const char* path) noexcept {                                  \
    return sydra_alloc_malloc_override::P::prof_dump(path);                                                        \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT void cfree(void* p) noexcept { sydra_alloc_malloc_override::P::free(p); }                  \
  SYDRA_ALLOC_MALLOC_EXPORT void* calloc(std::size_t c, std::size_t n) noexcept {                                   \
    return sydra_alloc_malloc_override::P::calloc(c, n);                                                           \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT void* realloc(void* p, std::size_t n) noexcept {                                        \
    return sydra_alloc_malloc_override::P::realloc(p, n);                                                          \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT void* reallocarray(void* p, std::size_t c, std::size_t n) noexcept {                    \
    return sydra_alloc_malloc_override::P::reallocarray(p, c, n);                                                  \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT int posix_memalign(void** out, std::size_t a, std::size_t n) noexcept {                 \
    return sydra_alloc_malloc_override::P::posix_memalign(out, a, n);                                              \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT void* aligned_alloc(std::size_t a, std::size_t n) noexcept {                            \
    return sydra_alloc_malloc_override::P::aligned_alloc(a, n);                                                    \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT void* memalign(std::size_t a, std::size_t n) noexcept {                                 \
    return sydra_alloc_malloc_override::P::memalign(a, n);                                                         \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT void* valloc(std::size_t n) noexcept { return sydra_alloc_malloc_override::P::valloc(n); } \
  SYDRA_ALLOC_MALLOC_EXPORT void* pvalloc(std::size_t n) noexcept {                                                 \
    return sydra_alloc_malloc_override::P::pvalloc(n);                                                             \
  }                                                                                                                \
  SYDRA_ALLOC_MALLOC_EXPORT std::size_t malloc_usable_size(void* p) noexcept {                                      \
    return sydra_alloc_malloc_override::P::usable_size(p);                                                         \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void* operator new(std::size_t n) { return sydra_alloc_malloc_override::P::new_or_throw(n, 0); } \
  SYDRA_ALLOC_NEW_EXPORT void* operator new[](std::size_t n) {                                                      \
    return sydra_alloc_malloc_override::P::new_or_throw(n, 0);                                                     \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void* operator new(std::size_t n, const std::nothrow_t&) noexcept {                        \
    return sydra_alloc_malloc_override::P::new_nothrow(n, 0);                                                      \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {                      \
    return sydra_alloc_malloc_override::P::new_nothrow(n, 0);                                                      \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void* operator new(std::size_t n, std::align_val_t a) {                                    \
    return sydra_alloc_malloc_override::P::new_or_throw(n, static_cast<std::size_t>(a));                           \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void* operator new[](std::size_t n, std::align_val_t a) {                                  \
    return sydra_alloc_malloc_override::P::new_or_throw(n, static_cast<std::size_t>(a));                           \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {    \
    return sydra_alloc_malloc_override::P::new_nothrow(n, static_cast<std::size_t>(a));                            \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {  \
    return sydra_alloc_malloc_override::P::new_nothrow(n, static_cast<std::size_t>(a));                            \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete(void* p) noexcept { sydra_alloc_malloc_override::P::free(p); }        \
  SYDRA_ALLOC_NEW_EXPORT void operator delete[](void* p) noexcept { sydra_alloc_malloc_override::P::free(p); }      \
  SYDRA_ALLOC_NEW_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept {                            \
    sydra_alloc_malloc_override::P::free(p);                                                                       \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept {                          \
    sydra_alloc_malloc_override::P::free(p);                                                                       \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete(void* p, std::size_t n) noexcept {                                    \
    sydra_alloc_malloc_override::P::sized_delete(p, n, 0);                                                         \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete[](void* p, std::size_t n) noexcept {                                  \
    sydra_alloc_malloc_override::P::sized_delete(p, n, 0);                                                         \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete(void* p, std::align_val_t) noexcept {                                 \
    sydra_alloc_malloc_override::P::free(p);                                                                       \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete[](void* p, std::align_val_t) noexcept {                               \
    sydra_alloc_malloc_override::P::free(p);                                                                       \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {          \
    sydra_alloc_malloc_override::P::free(p);                                                                       \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {        \
    sydra_alloc_malloc_override::P::free(p);                                                                       \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept {                \
    sydra_alloc_malloc_override::P::sized_delete(p, n, static_cast<std::size_t>(a));                               \
  }                                                                                                                \
  SYDRA_ALLOC_NEW_EXPORT void operator delete[](void* p, std::size_t n, std::align_val_t a) noexcept {              \
    sydra_alloc_malloc_override::P::sized_delete(p, n, static_cast<std::size_t>(a));                               \
  }                                                                                                                \
  static_assert(true, "")
