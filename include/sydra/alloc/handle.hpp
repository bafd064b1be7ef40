// BasicAllocatorHandle<Policy>: routes each call to the layer that owns it.
// It holds no allocation logic of its own beyond the routing and the checks.
//
//   alloc:  shard (this thread's, no lock) -> bucket layer (this CPU's cache,
//           no lock; a lock per batch) -> fallback
//   free:   the Pagemap names the slab -> its shard or bucket; no slab -> the
//           fallback. The caller's length and alignment are a claim that
//           checked builds verify, never a route.
//
// Pooled means 1..max_size bytes (the policy's largest class) at an
// alignment of at most 16, malloc's. Optional members (stats, epochs,
// retire, trim) exist only when a layer provides them. The layers, and what
// goes to all of them at once, are handle/layers.hpp; the calls a malloc
// needs that know no length are handle/unsized.hpp.
#pragma once

#include <sydra/alloc/concepts.hpp>
#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/epoch/epoch_guard.hpp>
#include <sydra/alloc/handle/layers.hpp>
#include <sydra/alloc/handle/unsized.hpp>
#include <sydra/alloc/prof/profiling.hpp>
#include <sydra/alloc/slab/idle_return.hpp>

#include <algorithm>
#include <cstring>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <class UserPolicy>
class BasicAllocatorHandle : detail::PolicyRules<UserPolicy>,  // one readable error per broken rule
                             detail::TableRules<UserPolicy>,
                             public detail::HandleLayers<detail::ValidPolicy<UserPolicy>>,
                             public detail::UnsizedCalls<BasicAllocatorHandle<UserPolicy>> {
  using Policy = detail::ValidPolicy<UserPolicy>;
  using Layers = detail::HandleLayers<Policy>;
  friend class detail::UnsizedCalls<BasicAllocatorHandle>;

 public:
  using PolicyType = UserPolicy;
  // The policy's facts (handle/layers.hpp), named for the routing below.
  using typename Layers::Classes;
  using typename Layers::Shards;
  using typename Layers::Buckets;
  using typename Layers::Fallback;
  using typename Layers::Profiler;
  using typename Layers::Options;
  using Layers::pooled;
  using Layers::hardened;
  using Layers::profiled;

  BasicAllocatorHandle() : BasicAllocatorHandle(Options{}) {}
  explicit BasicAllocatorHandle(const Options& options) : Layers(options, this, ShardHooks{&free_thunk, this}) {}
  BasicAllocatorHandle(const BasicAllocatorHandle&) = delete;  // pools point back at the handle
  BasicAllocatorHandle& operator=(const BasicAllocatorHandle&) = delete;

  ~BasicAllocatorHandle() {
    this->leave_fork_guard();
    if constexpr (Shards::enabled) shards_.shutdown();  // retired blocks freed, thread bindings dropped
    this->report_leaks();
  }

  // ---- Allocation fast path ------------------------------------------------
  // The whole fast path of an allocation, and of a free, is below: no call is
  // made on it except, last of all, the tail call to the slow path.
  SYDRA_FAST_PATH void* alloc(std::size_t len, std::size_t align) noexcept {
    if constexpr (profiled) {  // the sampler's clock: one subtract, one branch
      if (SYDRA_UNLIKELY(prof::due(len))) return alloc_sampled(len, align);
    }
    if constexpr (pooled) {
      // Pooled: 1..max_size bytes (len 0 wraps around and fails the test) at an
      // alignment of 0, 1, 2, 4, 8 or 16 (the bits of 0x10117).
      if (SYDRA_LIKELY(len - 1 < Classes::max_size && align <= max_pooled_alignment && ((0x10117u >> align) & 1u))) {
        const unsigned cls = Classes::class_of(len, align);
        if constexpr (!Classes::serves_16_everywhere) {
          if (SYDRA_UNLIKELY(cls == Classes::count)) return alloc_fallback(len, align);  // no class serves 16 here
        }
        if constexpr (Shards::enabled) {
          const detail::ThreadEntry& e = shards_.entry();
          if (SYDRA_LIKELY(shards_.bound(e))) {
            if (void* p; shards_.pop(e.hot, cls, p)) return pooled_out(p);  // this thread's shard: no lock
            if (shards_.has_shard(e)) return alloc_slow(len, align, cls);  // fill its head from its slabs
          } else if (shards_.running()) {
            return alloc_slow(len, align, cls);  // this thread's first use: bind, take a shard if one is free
          }
        }
        if constexpr (Buckets::enabled) {
          if constexpr (Shards::enabled) return alloc_per_cpu(len, align, cls);  // no shard (see alloc_per_cpu)
          if (void* p = buckets_.alloc_fast(cls)) return pooled_out(p);  // this CPU's cache, no lock
        }
        return alloc_slow(len, align, cls);
      }
    }
    return alloc_fallback(len, align);  // too big, over-aligned, or not a valid request
  }

  SYDRA_FAST_PATH void free(void* mem, std::size_t len, std::size_t align) noexcept {
    if constexpr (pooled) {
      // The block's slab says everything: whose it is, its class, its owner.
      SlabMeta* m;
      if (SYDRA_UNLIKELY(!Pagemap::lookup_flat(mem, m))) return free_unmapped(mem, len, align);  // no flat table
      return free_in(m, mem, len, align);
    } else {
      free_fallback(mem, len, align);
    }
  }

 private:
  // mem's slab is m, or none (nullptr).
  SYDRA_FAST_PATH void free_in(SlabMeta* m, void* mem, std::size_t len, std::size_t align) noexcept {
    if (m == nullptr) return free_fallback(mem, len, align);  // no slab: the fallback's, whatever len says
    if constexpr (!checked) {
      // The class is the slab's, never the caller's length: a release build
      // checks what the lookup pays for (the start of a block here, this
      // handle's slab in free_block) and holds len only to "0 frees
      // nothing". Checked builds also hold len and align to the class
      // (check_claims).
      if (SYDRA_LIKELY(len != 0 && m->starts_block(mem))) return free_block(m, mem, len, align);
    }
    return free_pooled(m, mem, len, align);
  }

  // A free of the start of a block of slab m: its slab's free list (the
  // owner), this thread's batch for another shard's slab, this CPU's cache,
  // or the slow route. A slab that this thread's shard owns is this
  // handle's (a handle's shards own only its slabs), so the owner's free,
  // the common one, never reads the slab's handle word.
  SYDRA_FAST_PATH void free_block(SlabMeta* m, void* mem, std::size_t len, std::size_t align) noexcept {
    const unsigned cls = m->size_class;
    if constexpr (Shards::enabled) {
      const detail::ThreadEntry& e = shards_.entry();
      if (SYDRA_LIKELY(shards_.bound(e) && m->owner == e.hot)) {
        if constexpr (hardened) mark_freed(mem);  // aborts if it already was
        if (shards_.push(e.hot, m, cls, mem)) return;  // onto its slab's free list
        return route_pooled(m, mem, len, align);       // the slab empties, or changes lists
      }
    }
    if (SYDRA_UNLIKELY(m->handle != this)) return free_pooled(m, mem, len, align);  // reports it
    if constexpr (hardened) mark_freed(mem);
    if constexpr (Shards::enabled) return free_not_owned(m, mem, cls, len, align);  // see alloc_per_cpu
    if constexpr (Buckets::enabled) {
      if (m->kind == SlabKind::bucket) return buckets_.free_class(cls, mem);  // this CPU's cache
    }
    return route_pooled(m, mem, len, align);  // a slow free
  }
  // ---- End of the fast path --------------------------------------------------

  // This CPU's cache, for a thread without a shard. Out of line when the
  // policy has shards: inlined, its registers would be saved on every shard
  // allocation and free too (a frame the shard path does not need).
  SYDRA_OUT_OF_LINE void* alloc_per_cpu(std::size_t len, std::size_t align, unsigned cls) noexcept {
    if constexpr (Buckets::enabled) {  // (an explicit instantiation makes every member)
      if (void* p = buckets_.alloc_fast(cls)) return pooled_out(p);  // no lock
    }
    return alloc_slow(len, align, cls);
  }
  // A free of a block this thread's shard does not own, when the policy has
  // shards: another shard's block goes into this thread's batch for its slab
  // (no lock, nothing shared until the batch is sent); a bucket's block into
  // this CPU's cache.
  SYDRA_OUT_OF_LINE void free_not_owned(SlabMeta* m, void* mem, unsigned cls, std::size_t len,
                                        std::size_t align) noexcept {
    if constexpr (Shards::enabled) {  // (an explicit instantiation makes every member)
      if (m->kind == SlabKind::shard) {
        const detail::ThreadEntry& e = shards_.entry();
        if (shards_.bound(e) && shards_.has_shard(e)) return shards_.free_remote(e.hot, m, mem);
      }
    }
    if constexpr (Buckets::enabled) {
      if (m->kind == SlabKind::bucket) return buckets_.free_class(cls, mem);  // no lock
    }
    return route_pooled(m, mem, len, align);  // no shard here, or the slab is not in use
  }

 public:
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if (mem == nullptr || len == 0 || !valid_request(new_len, align)) return false;
    if constexpr (pooled) {
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        check_block(m, mem, len, align, false);
        return same_class(m, new_len, align);
      }
    }
    if constexpr (profiled) {
      if (prof_.sampled(mem)) return false;  // its record keeps its size: moved by the caller instead
    }
    return fallback_.resize(mem, len, align, new_len);
  }

  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if (mem == nullptr || len == 0 || !valid_request(new_len, align)) return nullptr;
    if constexpr (pooled) {
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        check_block(m, mem, len, align, false);
        if (same_class(m, new_len, align)) return mem;
        return move_block(mem, len, align, new_len);  // across classes, or out to the fallback
      }
      if (poolable(new_len, align)) return move_block(mem, len, align, new_len);  // into a pool
    }
    if constexpr (profiled) {
      if (prof_.sampled(mem)) return move_block(mem, len, align, new_len);  // a new sample or none
    }
    void* p = fallback_.remap(mem, len, align, new_len);
    if (SYDRA_UNLIKELY(p == nullptr) && give_back_after_failure()) p = fallback_.remap(mem, len, align, new_len);
    return p;
  }

  Allocator allocator() noexcept { return Allocator::of(*this); }


  // A pin held for the guard's lifetime (epoch/epoch_guard.hpp); an empty
  // guard, whose why() says so, where the policy has no epochs.
  EpochGuard<BasicAllocatorHandle> pin() noexcept {
    return EpochGuard<BasicAllocatorHandle>(*this);
  }

  // Frees the block once no thread pinned at or before now is still pinned.
  // Until then the block is neither written nor poisoned: pinned readers may
  // still follow pointers stored anywhere in it. False only when no retire bag
  // could be allocated: the block is then untouched and still the caller's.
  template <class S = Shards>
    requires(detail::layer_has_epochs<S>())
  bool retire(void* mem, std::size_t len, std::size_t align) noexcept {
    if (mem == nullptr || len == 0) return true;
    align = normalize_align(align);
    if (!shards_.running()) {  // nobody can be pinned: nothing to wait for
      free(mem, len, align);
      return true;
    }
    if constexpr (checked || hardened) {  // diagnose a bad pointer now; the live bit clears at the real free
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        check_block(m, mem, len, align, false);
        if constexpr (hardened) check_not_freed(mem);
      }
    }
    return shards_.retire(mem, len, align);
  }

 private:
  using Layers::fallback_;
  using Layers::buckets_;
  using Layers::shards_;
  using Layers::prof_;
  using Layers::give_back_after_failure;

  static void free_thunk(void* self, void* mem, std::size_t len, std::size_t align) noexcept {
    static_cast<BasicAllocatorHandle*>(self)->free(mem, len, align);
  }

  static constexpr bool poolable(std::size_t len, std::size_t align) noexcept {
    return len <= Classes::max_size && align <= max_pooled_alignment &&
           Classes::class_of(len, align) < Classes::count;
  }

  // Everything the pooled fast path does not do: binding a shard or filling
  // its head, the bucket layer for a thread without a shard, and the
  // fallback when the pools are out of memory (or no class serves the
  // alignment). If all of it fails, what is empty goes back and it is tried
  // once more.
  SYDRA_SLOW_PATH void* alloc_slow(std::size_t len, std::size_t align, unsigned cls) noexcept {
    if (void* p = alloc_slow_once(len, align, cls)) return p;
    if (!give_back_after_failure()) return nullptr;
    return alloc_slow_once(len, align, cls);
  }
  void* alloc_slow_once(std::size_t len, std::size_t align, unsigned cls) noexcept {
    if (cls < Classes::count) {
      if constexpr (Shards::enabled) {
        if (void* p = shards_.alloc(cls)) return pooled_out(p);
      }
      if constexpr (Buckets::enabled) {
        if (void* p = buckets_.alloc(cls)) return pooled_out(p);
      }
    }
    return alloc_fallback_once(len, align);
  }

  SYDRA_OUT_OF_LINE void* alloc_fallback(std::size_t len, std::size_t align) noexcept {
    if (void* p = alloc_fallback_once(len, align)) return p;
    if (!valid_request(len, normalize_align(align)) || !give_back_after_failure()) return nullptr;
    return alloc_fallback_once(len, align);
  }
  void* alloc_fallback_once(std::size_t len, std::size_t align) noexcept {
    align = normalize_align(align);
    if (SYDRA_UNLIKELY(!valid_request(len, align))) return refuse_request(len, align);
    detail::idle_poll();  // a call into a handle: other pools' due decommits run here, off the fast paths
    return fallback_.alloc(len, align);
  }

  // free() in a process with no flat pagemap (yet): the radix table's lookup.
  SYDRA_OUT_OF_LINE void free_unmapped(void* mem, std::size_t len, std::size_t align) noexcept {
    free_in(Pagemap::lookup(mem), mem, len, align);
  }
  SYDRA_OUT_OF_LINE void free_fallback(void* mem, std::size_t len, std::size_t align) noexcept {
    if (mem == nullptr || len == 0) return;
    if constexpr (profiled) prof_.forget(mem);
    fallback_.free(mem, len, normalize_align(align));
    detail::idle_poll();
  }

  // The sampler's clock ran out. A sampled block comes from the fallback, so
  // that a pooled free never needs to ask whether its block was sampled; an
  // allocation the slow path does not sample takes the ordinary route (its
  // bytes are given back to the clock, which alloc() counts again).
  template <class P = Profiler>  // a template: an explicit instantiation without a profiler skips it
    requires(P::enabled)
  SYDRA_SLOW_PATH void* alloc_sampled(std::size_t len, std::size_t align) noexcept {
    const prof::Decision d = prof_.decide(len);
    if (!d.sample) {
      prof::give_back(len);
      return alloc(len, align);
    }
    void* p = alloc_fallback(len, align);
    if (p != nullptr) {
      const unsigned cls = pooled && poolable(len, align) ? Classes::class_of(len, align) : Classes::count;
      prof_.record(p, len, normalize_align(align), cls, d.weight,
                   reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)));
    }
    return p;
  }

  // Hardened policies: a freed pooled block carries a canary in its second
  // word (the per-process secret mixed with its address), written by the free
  // and cleared when the block is handed out again. A free that finds its
  // canary already there is a double free, wherever the block waits: every
  // free list links through the first word only (see Links), so the canary
  // stays until the block is handed out.
  static std::uint64_t canary(const void* p) noexcept {
    return pal::process_secret() ^ reinterpret_cast<std::uintptr_t>(p) ^ 0xF4EEDB10CCull;
  }
  static volatile std::uint64_t* canary_word(void* p) noexcept { return static_cast<volatile std::uint64_t*>(p) + 1; }
  SYDRA_NO_ASAN static void mark_freed(void* p) noexcept {
    track::link_access_begin(p, sizeof(FreeNode));
    volatile std::uint64_t* word = canary_word(p);
    const bool again = *word == canary(p);
    if (!again) *word = canary(p);
    track::link_access_end(p, sizeof(FreeNode));
    if (again) misuse(Misuse::double_free, "pooled block freed twice (hardened policy)", p, 0, 0);
  }
  SYDRA_NO_ASAN static void check_not_freed(void* p) noexcept {  // retire(): read, never write
    track::link_access_begin(p, sizeof(FreeNode));
    const bool again = *canary_word(p) == canary(p);
    track::link_access_end(p, sizeof(FreeNode));
    if (again) misuse(Misuse::double_free, "retire of a freed pooled block (hardened policy)", p, 0, 0);
  }

  // Checked builds mark each pooled block live, so a second free is caught;
  // hardened policies clear the freed-block canary.
  SYDRA_FAST_PATH void* pooled_out(void* p) noexcept {
    if constexpr (hardened) static_cast<std::uint64_t*>(p)[1] = 0;
#if SYDRA_ALLOC_CHECKED
    SlabMeta* m = Pagemap::lookup(p);
    m->mark_live(static_cast<std::size_t>(static_cast<char*>(p) - m->base) / m->block_size, true);
#endif
    return p;
  }

  SYDRA_SLOW_PATH void free_pooled(SlabMeta* m, void* mem, std::size_t len, std::size_t align) noexcept {
    if (len == 0) return;
    check_block(m, mem, len, align, true);
    if constexpr (hardened) mark_freed(mem);
    route_pooled(m, mem, len, align);
  }
  SYDRA_SLOW_PATH void route_pooled(SlabMeta* m, void* mem, std::size_t len, std::size_t align) noexcept {
    if constexpr (Shards::enabled) {
      if (m->kind == SlabKind::shard) return shards_.free(m, mem);
    }
    if constexpr (Buckets::enabled) {
      if (m->kind == SlabKind::bucket) return buckets_.free(m, mem);
    }
    misuse(Misuse::double_free, "pointer into a slab that holds no blocks (double free, or a stale pointer)", mem,
           len, align);
  }

  // What every build checks, because the lookup the free already made pays
  // for it: the block is this handle's, and starts a block. Checked builds
  // also hold the caller's length and alignment to the block's class, and the
  // block's live bit to catch a double free.
  SYDRA_FAST_PATH void check_block(SlabMeta* m, void* mem, std::size_t len, std::size_t align,
                                   bool freeing) noexcept {
    if (SYDRA_UNLIKELY(m->handle != this))
      misuse(Misuse::foreign_pointer, "block belongs to another handle", mem, len, align);
    const std::size_t off = static_cast<std::size_t>(static_cast<char*>(mem) - m->base);
    if (SYDRA_UNLIKELY(m->kind == SlabKind::empty))
      misuse(Misuse::double_free, "pointer into a slab that holds no blocks (double free, or a stale pointer)", mem,
             len, align);
    if (SYDRA_UNLIKELY(!m->starts_block(mem)))
      misuse(Misuse::interior_pointer, "pointer is not the start of a pooled block", mem, len, align);
    if constexpr (checked) check_claims(m, off, mem, len, align, freeing);
  }

  SYDRA_SLOW_PATH void check_claims(SlabMeta* m, std::size_t off, void* mem, std::size_t len, std::size_t align,
                                    bool freeing) noexcept {
    align = normalize_align(align);
    if (align > max_pooled_alignment)
      misuse(Misuse::alignment_mismatch, "over-aligned free of a pooled block (wrong path)", mem, len, align);
    if (len > Classes::max_size || Classes::class_of(len, align) != m->size_class)
      misuse(Misuse::size_mismatch, "length or alignment does not match the pooled block's size class", mem, len,
             align);
#if SYDRA_ALLOC_CHECKED
    const std::size_t idx = off / m->block_size;
    const bool was_live = freeing ? m->mark_live(idx, false) : m->is_live(idx);
    if (!was_live) misuse(Misuse::double_free, "pooled block is not live (double free)", mem, len, align);
#else
    (void)off;
    (void)freeing;
#endif
  }

  [[noreturn]] SYDRA_SLOW_PATH static void misuse(Misuse kind, const char* what, const void* mem, std::size_t len,
                                                  std::size_t align) noexcept {
    report_misuse(kind, what, mem, len, align);
  }

  static bool same_class(const SlabMeta* m, std::size_t new_len, std::size_t align) noexcept {
    return poolable(new_len, align) && Classes::class_of(new_len, align) == m->size_class;
  }

  void* move_block(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    void* p = alloc(new_len, align);
    if (p == nullptr) return nullptr;  // the old block stays valid
    std::memcpy(p, mem, std::min(len, new_len));
    free(mem, len, align);
    return p;
  }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
