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
// (blocks above 64 KiB, over-aligned ones), so its settings are ours:
//   - one arena: glibc's per-thread arenas exist to spare small requests a
//     lock, and it serves none here; and the top of a per-thread arena's
//     heap is trimmed only at a free that leaves M_TRIM_THRESHOLD there,
//     never by malloc_trim, so with the threshold below it would stay
//     resident for good;
//   - blocks up to 32 MiB (glibc's own dynamic ceiling) come from the heap,
//     and glibc never trims at free;
//   - what is free goes back the way empty slabs do (slab/idle_return.hpp):
//     a free starts the delay, and once it has passed, the next poll (a slow
//     path of any handle, a fallback call) runs glibc's malloc_trim, which
//     leaves keep_bytes free at the top of the heap and returns every other
//     free page. Like the slabs' decommits, a program that goes idle keeps
//     the pages until its next poll.
// The settings are process-wide, like the heap: the first OwnedLibcHeap of a
// process applies its options, later ones share them. glibc's own mallopt
// and malloc_trim are taken from the C library (pal/libc_symbols.hpp), never
// from another malloc the process links. Outside a malloc library (a test
// that builds MallocPolicy's handle) they tune the program's own malloc.
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
  std::size_t mmap_threshold = std::size_t{32} << 20;  // blocks above it are mapped (at most 32 MiB)
  std::size_t keep_bytes = std::size_t{4} << 20;       // free bytes a trim leaves at the heap's top
  std::uint32_t trim_delay_ms = 250;                   // from a free to the trim (the pools' decommit delay)
};

namespace detail {

// The process's one trimmer: an idle client whose run() is malloc_trim.
class LibcTrimmer {
 public:
  static LibcTrimmer& instance() noexcept {
    static constinit LibcTrimmer t;
    return t;
  }

  // Applies o once per process; false when glibc refused a setting (no trims
  // are then scheduled, and what was set before the refusal stays set).
  bool adopt(const OwnedLibcHeapOptions& o) noexcept {
    if (state_.load(std::memory_order_acquire) != unset) return state_.load() == active;
    std::lock_guard g(mu_);
    if (state_.load(std::memory_order_relaxed) != unset) return state_.load() == active;
    using Mallopt = int (*)(int, int) noexcept;
    auto mallopt = reinterpret_cast<Mallopt>(pal::find_libc_function("mallopt"));
    trim_ = reinterpret_cast<Trim>(pal::find_libc_function("malloc_trim"));
    // <malloc.h>'s names, which a malloc does not include.
    constexpr int m_trim_threshold = -1, m_mmap_threshold = -3, m_arena_max = -8;
    const auto mmap_threshold = static_cast<int>(o.mmap_threshold > (std::size_t{32} << 20) ? std::size_t{32} << 20
                                                                                           : o.mmap_threshold);
    const bool ok = mallopt != nullptr && trim_ != nullptr && mallopt(m_arena_max, 1) == 1 &&
                    mallopt(m_mmap_threshold, mmap_threshold) == 1 && mallopt(m_trim_threshold, INT32_MAX) == 1;
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

  // A block, or the tail of one, went back to the heap: the trim is due
  // after the delay, unless one is pending already (the delay runs from the
  // first free after a trim). The relaxed reads see adopt()'s stores: every
  // caller's heap was built by adopt(), and its handle published after.
  void note_free() noexcept {
    if (state_.load(std::memory_order_relaxed) != active) return;
    if (client_.due_ms.load(std::memory_order_relaxed) != 0) return;
    idle_note_due(client_, idle_now_ms() + delay_ms_);
  }

 private:
  using Trim = int (*)(std::size_t) noexcept;
  enum : int { unset = 0, active = 1, refused = 2 };

  constexpr LibcTrimmer() noexcept = default;

  static void run(void* ctx, std::uint64_t) noexcept {
    auto* t = static_cast<LibcTrimmer*>(ctx);
    t->trim_(t->keep_);
  }

  std::mutex mu_;
  std::atomic<int> state_{unset};
  Trim trim_ = nullptr;
  std::size_t keep_ = 0;
  std::uint32_t delay_ms_ = 0;
  IdleClient client_{};
};

}  // namespace detail

class OwnedLibcHeap : public LibcHeap {
 public:
  using Options = OwnedLibcHeapOptions;
  OwnedLibcHeap() : OwnedLibcHeap(Options{}) {}
  explicit OwnedLibcHeap(const Options& o) noexcept { detail::LibcTrimmer::instance().adopt(o); }

  // A move frees the old block, a shrink in place its tail.
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    void* p = LibcHeap::remap(mem, len, align, new_len);
    if (p != nullptr) detail::LibcTrimmer::instance().note_free();
    return p;
  }
  void* remap_unsized(void* mem, std::size_t new_len) noexcept {
    void* p = LibcHeap::remap_unsized(mem, new_len);
    if (p != nullptr) detail::LibcTrimmer::instance().note_free();
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
