// Region sources: where a slab pool's chunks of address space come from.
//
// A RegionSource hands out large regions (a multiple of 64 KiB, 64 KiB-aligned)
// and takes them back. OsRegions reserves them from the operating system;
// FixedArena carves them from memory the user already owns (a static buffer,
// a huge-page mapping, a shared segment), so that a policy can bound its slab
// memory or place it. The pool never asks a source for anything else.
#pragma once

#include <sydra/alloc/pal/os_memory.hpp>
#include <sydra/alloc/slab/size_classes.hpp>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// reserve(n): n bytes, 64 KiB-aligned, readable and writable, or nullptr.
//   Precondition: n is a multiple of slab_bytes. Called under the pool's
//   lock, so it need not be thread-safe; it must not allocate from the handle
//   it serves.
// release(p, n): gives back a whole region from reserve(); called when the
//   handle is destroyed, and for a chunk whose slabs are all empty at trim()
//   or when an allocation failed.
// Optional: `static constexpr bool reuses_released_regions = false;` for a
//   source whose release() does not make the range available again (a
//   FixedArena): the pool then releases chunks only when it is destroyed,
//   never early (trim(), out-of-memory retries).
// decommit(p, n): returns the memory of a slab-aligned part of a region while
//   keeping it usable (its contents become unspecified); false if it cannot,
//   in which case the memory simply stays committed.
// Optional: `void set_huge_pages(bool on) noexcept`, for a source that can
//   back regions with transparent huge pages: the pool calls it once, before
//   any reserve(), with SlabPoolOptions::huge_pages, and when on asks only
//   for multiples of pal::huge_page_bytes. A source without it ignores the
//   option (a FixedArena's memory is the caller's, huge pages or not).
template <class S>
concept RegionSource = std::default_initializable<typename S::Options> &&
                       std::constructible_from<S, const typename S::Options&> &&
                       requires(S& s, void* p, std::size_t n) {
                         { s.reserve(n) } noexcept -> std::same_as<void*>;
                         { s.release(p, n) } noexcept;
                         { s.decommit(p, n) } noexcept -> std::same_as<bool>;
                       };

class OsRegions {
 public:
  struct Options {};
  OsRegions() = default;
  explicit OsRegions(const Options&) noexcept {}
  // With huge pages, a chunk is 2 MiB-aligned (n is then a multiple of
  // 2 MiB) so that all of it can be backed by huge pages: fewer TLB misses
  // when frees and refills walk many slabs. A refused madvise (a kernel
  // without THP) leaves a chunk of small pages, which is still a chunk.
  void set_huge_pages(bool on) noexcept { huge_ = on; }
  void* reserve(std::size_t n) noexcept {
    if (!huge_) return pal::reserve(n, slab_bytes);
    void* p = pal::reserve(n, pal::huge_page_bytes);
    if (p != nullptr) (void)pal::advise_huge_pages(p, n);
    return p;
  }
  void release(void* p, std::size_t n) noexcept { pal::release(p, n); }
  bool decommit(void* p, std::size_t n) noexcept { return pal::decommit(p, n); }

 private:
  bool huge_ = false;
};

// A fixed region the caller owns and keeps alive for the handle's lifetime.
// Once it is used up, slab refills fail and the pools fall back (or return
// nullptr), exactly as when the OS says no. Its memory is never decommitted:
// it is the caller's.
class FixedArena {
 public:
  static constexpr bool reuses_released_regions = false;  // a bump allocator: released ranges are lost
  struct Options {
    void* base = nullptr;  // need not be aligned: the arena aligns it up to 64 KiB
    std::size_t bytes = 0;
  };
  FixedArena() = default;
  explicit FixedArena(const Options& o) noexcept {
    const auto b = reinterpret_cast<std::uintptr_t>(o.base);
    const std::uintptr_t start = (b + slab_bytes - 1) & ~(std::uintptr_t{slab_bytes} - 1);
    const std::uintptr_t end = (b + o.bytes) & ~(std::uintptr_t{slab_bytes} - 1);
    if (o.base != nullptr && end > start) {
      next_ = reinterpret_cast<char*>(start);
      end_ = reinterpret_cast<char*>(end);
    }
  }
  void* reserve(std::size_t n) noexcept {
    if (static_cast<std::size_t>(end_ - next_) < n) return nullptr;
    char* p = next_;
    next_ += n;
    return p;
  }
  void release(void*, std::size_t) noexcept {}
  bool decommit(void*, std::size_t) noexcept { return false; }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - next_); }

 private:
  char* next_ = nullptr;
  char* end_ = nullptr;
};

static_assert(RegionSource<OsRegions> && RegionSource<FixedArena>);

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
