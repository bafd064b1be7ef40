// Tracked<Heap>: the fallback stats mixin. Counts allocs, frees, resizes and
// remaps, bins allocation sizes over fallback_bounds (seed: fallback_allocs,
// fallback_frees, fallback_resizes, fallback_remaps, fallback_sizes), and
// knows the live blocks and bytes for the leak report.
//
// Every counter is per thread (detail::ThreadCounters): a fallback request
// costs its thread two plain counter updates, never a read-modify-write on a
// line that every thread writes. Allocations are the sum of the bins.
#pragma once

#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/heap/audited.hpp>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// How Tracked counts bytes: the requested length (the default, what a sized
// free names), or the heap's usable size of each block (for a malloc, whose
// free() does not know the length).
struct TrackedFeatures {
  bool usable_bytes = false;
};

template <class Heap, TrackedFeatures Features = TrackedFeatures{}>
class Tracked {
 public:
  using Options = typename Heap::Options;
  Tracked() : Tracked(Options{}) {}
  static constexpr std::size_t thread_block_bytes = sizeof(typename detail::ThreadCounters<fallback_bins + 5>::Block);
  explicit Tracked(const Options& o) : heap_(o), c_(heap_.backing_allocator()) {}

  void* alloc(std::size_t len, std::size_t align) noexcept { return counted(heap_.alloc(len, align), len); }
  void* alloc_zeroed(std::size_t len, std::size_t align) noexcept
    requires requires(Heap& h) { h.alloc_zeroed(len, align); }
  {
    return counted(heap_.alloc_zeroed(len, align), len);
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    if (!heap_.resize(mem, len, align, new_len)) return false;
    on_resize(resizes, len, new_len);
    return true;
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    const std::size_t old_bytes = bytes_of(mem, len);  // before: the block may move
    void* p = heap_.remap(mem, len, align, new_len);
    if (p != nullptr) {
      on_resize(remaps, len, new_len);
      if constexpr (Features.usable_bytes) {
        auto* b = c_.local();
        c_.bump(b, bytes_out, old_bytes);
        c_.bump(b, bytes_in, heap_.usable_size(p));
      }
    }
    return p;
  }
  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    auto* b = c_.local();
    c_.bump(b, frees);
    c_.bump(b, bytes_out, bytes_of(mem, len));
    heap_.free(mem, len, align);
  }
  std::size_t usable_size(const void* mem) noexcept
    requires requires(Heap& h) { h.usable_size(mem); }
  {
    return heap_.usable_size(mem);
  }
  // A free that does not know the length: only with usable-size counting.
  void free_unsized(void* mem) noexcept
    requires requires(Heap& h) { h.free_unsized(mem); }
  {
    static_assert(Features.usable_bytes,
                  "Tracked: free_unsized() needs Tracked<Heap, TrackedFeatures{.usable_bytes = true}> (byte counts "
                  "cannot follow a free that does not know its length otherwise)");
    auto* b = c_.local();
    c_.bump(b, frees);
    c_.bump(b, bytes_out, heap_.usable_size(mem));
    heap_.free_unsized(mem);
  }

  void* remap_unsized(void* mem, std::size_t new_len) noexcept
    requires requires(Heap& h) { h.remap_unsized(mem, new_len); }
  {
    static_assert(Features.usable_bytes, "Tracked: remap_unsized() needs TrackedFeatures{.usable_bytes = true}");
    const std::size_t old_bytes = heap_.usable_size(mem);
    void* p = heap_.remap_unsized(mem, new_len);
    if (p != nullptr) {
      auto* b = c_.local();
      c_.bump(b, remaps);
      c_.bump(b, bytes_out, old_bytes);
      c_.bump(b, bytes_in, heap_.usable_size(p));
    }
    return p;
  }

  void collect_stats(Stats& out) const noexcept {
    out.has_fallback = true;
    std::array<std::size_t, 4 + fallback_bins> order{frees, bytes_out, resizes, remaps};
    for (std::size_t i = 0; i < fallback_bins; ++i) order[4 + i] = i;
    const auto v = c_.sum(order);
    const auto in = c_.sum(bytes_in);  // after bytes_out: live bytes never negative
    FallbackStats& f = out.fallback;
    f.frees = v[0];
    f.resizes = v[2];
    f.remaps = v[3];
    f.allocs = 0;
    for (std::size_t i = 0; i < fallback_bins; ++i) {
      f.sizes[i] = v[4 + i];
      f.allocs += v[4 + i];
    }
    const LeakReport l = LeakReport::difference(f.allocs, f.frees, in, v[1]);
    f.blocks_live = l.blocks;
    f.bytes_live = l.bytes;
    f.counts_underflow = l.underflow;
  }
  LeakReport live() const noexcept {
    std::array<std::size_t, 2 + fallback_bins> order{frees, bytes_out};
    for (std::size_t i = 0; i < fallback_bins; ++i) order[2 + i] = i;
    const auto v = c_.sum(order);
    std::uint64_t allocs = 0;
    for (std::size_t i = 0; i < fallback_bins; ++i) allocs += v[2 + i];
    return LeakReport::difference(allocs, v[0], c_.sum(bytes_in), v[1]);
  }
  Allocator backing_allocator() noexcept { return heap_.backing_allocator(); }
  Heap& inner() noexcept { return heap_; }
  void fork_lock() noexcept
    requires requires(Heap& h) { h.fork_lock(); }
  {
    heap_.fork_lock();
  }
  void fork_unlock() noexcept
    requires requires(Heap& h) { h.fork_unlock(); }
  {
    heap_.fork_unlock();
  }

 private:
  void* counted(void* p, std::size_t len) noexcept {
    if (p != nullptr) {
      auto* b = c_.local();
      c_.bump(b, fallback_bin_of(len));
      c_.bump(b, bytes_in, bytes_of(p, len));
    }
    return p;
  }
  enum : std::size_t { frees = fallback_bins, resizes, remaps, bytes_in, bytes_out, count };
  static_assert(count == fallback_bins + 5);

  void on_resize(std::size_t which, std::size_t old_len, std::size_t new_len) noexcept {
    auto* b = c_.local();
    c_.bump(b, which);
    if constexpr (!Features.usable_bytes) {  // usable-size counting: a block's usable size is what it was counted as
      c_.bump(b, bytes_out, old_len);
      c_.bump(b, bytes_in, new_len);
    }
  }
  std::size_t bytes_of(const void* mem, std::size_t len) noexcept {
    if constexpr (Features.usable_bytes) {
      return heap_.usable_size(mem);
    } else {
      (void)mem;
      return len;
    }
  }

  [[no_unique_address]] Heap heap_;
  detail::ThreadCounters<count> c_;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
