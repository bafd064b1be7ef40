// Tracked<Heap>: the fallback stats mixin. Counts allocs, frees, resizes and
// remaps, and bins allocation sizes over fallback_bounds (seed: fallback_allocs,
// fallback_frees, fallback_resizes, fallback_remaps, fallback_sizes).
#pragma once

#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/policy/audited.hpp>

namespace sydra::alloc {
inline namespace v1 {

template <class Heap>
class Tracked {
 public:
  using Options = typename Heap::Options;
  Tracked() = default;
  explicit Tracked(const Options& o) : heap_(o) {}

  void* alloc(std::size_t len, std::size_t align) noexcept {
    void* p = heap_.alloc(len, align);
    if (p != nullptr) {
      allocs_.add();
      sizes_[fallback_bin_of(len)].add();
    }
    return p;
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    const bool ok = heap_.resize(mem, len, align, new_len);
    if (ok) resizes_.add();
    return ok;
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    void* p = heap_.remap(mem, len, align, new_len);
    if (p != nullptr) remaps_.add();
    return p;
  }
  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    frees_.add();
    heap_.free(mem, len, align);
  }

  void collect_stats(Stats& out) const noexcept {
    out.has_fallback = true;
    out.fallback.allocs = allocs_.get();
    out.fallback.frees = frees_.get();
    out.fallback.resizes = resizes_.get();
    out.fallback.remaps = remaps_.get();
    for (std::size_t i = 0; i < fallback_bins; ++i) out.fallback.sizes[i] = sizes_[i].get();
  }
  LeakReport live() const noexcept
    requires requires(const Heap& h) { h.live(); }
  {
    return heap_.live();
  }
  Allocator backing_allocator() noexcept { return heap_.backing_allocator(); }
  Heap& inner() noexcept { return heap_; }

 private:
  [[no_unique_address]] Heap heap_;
  Counter<true> allocs_, frees_, resizes_, remaps_;
  std::array<Counter<true>, fallback_bins> sizes_;
};

}  // namespace v1
}  // namespace sydra::alloc
