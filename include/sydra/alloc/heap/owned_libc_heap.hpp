// OwnedLibcHeap: glibc's heap when it serves nobody but sydra, as the
// fallback of the process's malloc (libsydra-malloc.so, malloc_override.hpp).
//
// glibc tunes its heap for being the process's malloc: it trims the top of
// a heap at each free that leaves more than M_TRIM_THRESHOLD free there (2x
// the dynamic mmap threshold: 2 MiB once a 1-MiB block was freed), and maps
// every block above the mmap threshold afresh. A program that frees 64
// blocks of 1 MiB and allocates them again then pays a page fault per 4 KiB
// every time: calloc-big (test/malloc/calloc_big.cpp) took 184k faults and
// 4.7x mimalloc's time, which keeps the pages and clears what it reuses.
//
// Behind libsydra-malloc.so the heap only holds what sydra does not pool
// (blocks above 64 KiB, over-aligned ones), so its thresholds are ours:
//   - blocks up to 32 MiB (glibc's largest threshold) come from the heap,
//     and glibc never trims on free;
//   - what is free goes back the way empty slabs do (slab/idle_return.hpp):
//     a free starts the delay, and once it has passed, the next poll (a slow
//     path of any handle, a fallback call, the background thread) runs
//     glibc's malloc_trim, which keeps keep_bytes at the top of the main
//     heap and returns every other free page.
// Per-thread arenas keep the top of their heaps (at most 64 MiB each) until
// a free leaves M_TRIM_THRESHOLD there, as under glibc's own dynamic
// thresholds once a 32-MiB block was freed; malloc_trim returns every other
// free page of theirs. The settings are process-wide, like the heap: the
// first OwnedLibcHeap of a process applies its options, later ones share them. glibc's own mallopt
// and malloc_trim are taken from the C library (pal/libc_symbols.hpp), never
// from another malloc the process links.
#pragma once

#include <sydra/alloc/heap/libc_heap.hpp>
#include <sydra/alloc/slab/idle_return.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct OwnedLibcHeapOptions {
  std::size_t mmap_threshold = std::size_t{32} << 20;  // blocks above it are mapped; glibc caps it at 32 MiB
  std::size_t keep_bytes = std::size_t{4} << 20;       // free bytes a trim leaves at the top (the pool's budget)
  std::uint32_t trim_delay_ms = 250;                   // from a free to the trim (the pool's decommit delay)
};

namespace detail {

// The process's one trimmer: an idle client whose run() is malloc_trim.
class LibcTrimmer {
 public:
  static LibcTrimmer& instance() noexcept {
    static constinit LibcTrimmer t;
    return t;
  }

  // Applies o once per process; false when glibc refused a setting (the heap
  // then keeps glibc's own policy, and no trims are scheduled).
  bool adopt(const OwnedLibcHeapOptions& o) noexcept {
    if (state_.load(std::memory_order_acquire) != unset) return state_.load() == active;
    std::lock_guard g(mu_);
    if (state_.load(std::memory_order_relaxed) != unset) return state_.load() == active;
    using Mallopt = int (*)(int, int) noexcept;
    auto mallopt = reinterpret_cast<Mallopt>(pal::find_libc_function("mallopt"));
    trim_ = reinterpret_cast<Trim>(pal::find_libc_function("malloc_trim"));
    constexpr int m_trim_threshold = -1, m_mmap_threshold = -3;  // <malloc.h>, which a malloc does not include
    const auto mmap_threshold = static_cast<int>(o.mmap_threshold > (std::size_t{32} << 20) ? std::size_t{32} << 20
                                                                                           : o.mmap_threshold);
    const bool ok = mallopt != nullptr && trim_ != nullptr && mallopt(m_mmap_threshold, mmap_threshold) == 1 &&
                    mallopt(m_trim_threshold, INT32_MAX) == 1;
    keep_ = o.keep_bytes;
    delay_ms_ = o.trim_delay_ms;
    if (ok) {
      client_.run = &run;
      client_.ctx = this;
      idle_register(client_);
    }
    state_.store(ok ? active : refused, std::memory_order_release);
    return ok;
  }

  // A block went back to the heap: the trim is due after the delay, unless
  // one is pending already (the delay runs from the first free after a trim).
  void note_free() noexcept {
    if (state_.load(std::memory_order_relaxed) != active) return;
    if (client_.due_ms.load(std::memory_order_relaxed) != 0) return;
    idle_note_due(client_, idle_now_ms() + delay_ms_);
  }

  std::uint64_t trims() const noexcept { return trims_.load(std::memory_order_relaxed); }
  bool active_now() const noexcept { return state_.load(std::memory_order_acquire) == active; }

 private:
  using Trim = int (*)(std::size_t) noexcept;
  enum : int { unset = 0, active = 1, refused = 2 };

  constexpr LibcTrimmer() noexcept = default;

  static void run(void* ctx, std::uint64_t) noexcept {
    auto* t = static_cast<LibcTrimmer*>(ctx);
    t->trim_(t->keep_);
    t->trims_.fetch_add(1, std::memory_order_relaxed);
  }

  std::mutex mu_;
  std::atomic<int> state_{unset};
  Trim trim_ = nullptr;
  std::size_t keep_ = 0;
  std::uint32_t delay_ms_ = 0;
  std::atomic<std::uint64_t> trims_{0};
  IdleClient client_{};
};

}  // namespace detail

class OwnedLibcHeap : public LibcHeap {
 public:
  using Options = OwnedLibcHeapOptions;
  OwnedLibcHeap() : OwnedLibcHeap(Options{}) {}
  explicit OwnedLibcHeap(const Options& o) noexcept { detail::LibcTrimmer::instance().adopt(o); }

  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    void* p = LibcHeap::remap(mem, len, align, new_len);
    if (p != nullptr && p != mem) detail::LibcTrimmer::instance().note_free();
    return p;
  }
  void* remap_unsized(void* mem, std::size_t new_len) noexcept {
    void* p = LibcHeap::remap_unsized(mem, new_len);
    if (p != nullptr && p != mem) detail::LibcTrimmer::instance().note_free();
    return p;
  }
  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    LibcHeap::free(mem, len, align);
    detail::LibcTrimmer::instance().note_free();
  }
  void free_unsized(void* mem) noexcept {
    LibcHeap::free_unsized(mem);
    detail::LibcTrimmer::instance().note_free();
  }

  Allocator backing_allocator() noexcept { return Allocator::of(*this); }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
