// UnsizedCalls<Handle>: what a malloc built on the handle (lib/malloc/,
// malloc_override.hpp) asks beyond the Allocator contract. C's free(),
// realloc() and malloc_usable_size() do not know a block's length. A pooled
// block needs none (its slab knows its class); a fallback block needs a
// Fallback with usable_size(), free_unsized() and remap_unsized(), so each
// call exists only where the Fallback has what it needs. And calloc()'s
// zero-filled block, which a fallback may clear for less.
//
// A base of BasicAllocatorHandle (CRTP, a friend of it): these route through
// the handle's own steps and checks, as its sized calls do, with no call
// added on the way.
#pragma once

#include <sydra/alloc/prof/sampler.hpp>
#include <sydra/alloc/request.hpp>
#include <sydra/alloc/slab/idle_return.hpp>
#include <sydra/alloc/slab/pagemap.hpp>
#include <sydra/alloc/slab/size_classes.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

#include <algorithm>
#include <cstring>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {

template <class Handle>
class UnsizedCalls {
 public:
  template <class H = Handle>
    requires requires(typename H::Fallback& f, void* p) { f.free_unsized(p); }
  SYDRA_FAST_PATH void free_unsized(void* mem) noexcept {
    if constexpr (Handle::pooled) {
      SlabMeta* m;
      if (SYDRA_UNLIKELY(!Pagemap::lookup_flat(mem, m))) return free_unsized_unmapped(mem);  // no flat table
      return free_unsized_in(m, mem);
    } else {
      free_unsized_fallback(mem);
    }
  }

  // calloc(): a zero-filled block. Pooled blocks are cleared here; a
  // fallback that knows which of its pages are fresh from the kernel
  // (LibcHeap: glibc's calloc) clears only the others, which for a large
  // block is most of its cost.
  void* alloc_zeroed(std::size_t len, std::size_t align) noexcept {
    Handle& h = self();
    if constexpr (requires(typename Handle::Fallback& f) { f.alloc_zeroed(len, align); }) {
      if (!Handle::poolable(len, align)) {
        if constexpr (Handle::profiled) {
          if (SYDRA_UNLIKELY(prof::due(len))) {
            void* p = h.alloc_sampled(len, align);
            if (p != nullptr) std::memset(p, 0, len);
            return p;
          }
        }
        align = normalize_align(align);
        if (SYDRA_UNLIKELY(!valid_request(len, align))) return refuse_request(len, align);
        detail::idle_poll();
        void* p = h.fallback_.alloc_zeroed(len, align);
        if (SYDRA_UNLIKELY(p == nullptr) && h.give_back_after_failure()) p = h.fallback_.alloc_zeroed(len, align);
        return p;
      }
    }
    void* p = h.alloc(len, align);
    if (p != nullptr) std::memset(p, 0, len);
    return p;
  }
  template <class H = Handle>
    requires requires(typename H::Fallback& f, const void* p) { f.usable_size(p); }
  std::size_t usable_size(const void* mem) noexcept {
    if (mem == nullptr) return 0;
    if constexpr (Handle::pooled) {
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        self().check_block(m, const_cast<void*>(mem), m->block_size, 1, false);
        return m->block_size;
      }
    }
    return self().fallback_.usable_size(mem);
  }

  // realloc(): a remap that knows neither the block's length nor its
  // alignment (malloc's). Pooled blocks: the slab's class; fallback blocks:
  // a Fallback with remap_unsized(). nullptr leaves the block as it was.
  template <class H = Handle>
    requires requires(typename H::Fallback& f, void* p) { f.remap_unsized(p, std::size_t{}); }
  void* remap_unsized(void* mem, std::size_t new_len) noexcept {
    Handle& h = self();
    constexpr std::size_t align = max_pooled_alignment;
    if (!valid_request(new_len, align)) return nullptr;
    if constexpr (Handle::pooled) {
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        h.check_block(m, mem, m->block_size, 1, false);
        if (Handle::same_class(m, new_len, align)) return mem;
        return move_unsized(mem, m->block_size, new_len);  // across classes, or out to the fallback
      }
      if (Handle::poolable(new_len, align))
        return move_unsized(mem, h.fallback_.usable_size(mem), new_len);  // into a pool
    }
    if constexpr (Handle::profiled) {
      if (h.prof_.sampled(mem)) return move_unsized(mem, h.fallback_.usable_size(mem), new_len);
    }
    return h.fallback_.remap_unsized(mem, new_len);
  }

 private:
  Handle& self() noexcept { return static_cast<Handle&>(*this); }

  // Templates, as free_unsized(): only for a Fallback with free_unsized().
  template <class H = Handle>
  SYDRA_FAST_PATH void free_unsized_in(SlabMeta* m, void* mem) noexcept {
    if (m == nullptr) return free_unsized_fallback(mem);
    if constexpr (!checked) {  // the slab names the class; the same checks as a sized free
      if (SYDRA_LIKELY(m->starts_block(mem))) return self().free_block(m, mem, m->block_size, 1);
    }
    return self().free_pooled(m, mem, m->block_size, 1);
  }
  template <class H = Handle>
  SYDRA_OUT_OF_LINE void free_unsized_unmapped(void* mem) noexcept {
    free_unsized_in(Pagemap::lookup(mem), mem);
  }
  template <class H = Handle>
  SYDRA_OUT_OF_LINE void free_unsized_fallback(void* mem) noexcept {
    if (mem == nullptr) return;
    if constexpr (Handle::profiled) self().prof_.forget(mem);
    self().fallback_.free_unsized(mem);
    detail::idle_poll();  // as free_fallback: due decommits and trims run where a call is already slow
  }

  template <class H = Handle>
  void* move_unsized(void* mem, std::size_t usable, std::size_t new_len) noexcept {
    void* p = self().alloc(new_len, max_pooled_alignment);
    if (p == nullptr) return nullptr;  // the old block stays valid
    std::memcpy(p, mem, std::min(usable, new_len));
    free_unsized(mem);
    return p;
  }
};

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
