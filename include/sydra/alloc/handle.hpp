// BasicAllocatorHandle<Policy>: routes each call to the policy that owns it.
// It holds no allocation logic of its own beyond the routing and the checks.
//
//   alloc:  shard (this thread's, no lock) -> bucket (one lock) -> fallback
//   free:   Pagemap lookup -> the owning shard or bucket; otherwise the fallback
//
// Small means 1..256 bytes with alignment <= 8; everything else is the
// fallback's. Optional members (stats, epochs, retire) exist only when a
// policy provides the matching mixin.
#pragma once

#include <sydra/alloc/concepts.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/mixin/epoch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

namespace sydra::alloc {
inline namespace v1 {

namespace detail {
struct NoSlabSource {
  constexpr NoSlabSource(Allocator, const void*) noexcept {}
};
struct NoRetireList {};
struct RetiredRecord {
  RetiredRecord* next;
  void* mem;
  std::size_t len;
  std::size_t align;
  std::uint64_t epoch;
};
}  // namespace detail

template <HandlePolicy Policy>
class BasicAllocatorHandle {
 public:
  using PolicyType = Policy;
  using Shards = typename Policy::Shards;
  using Buckets = typename Policy::Buckets;
  using Fallback = typename Policy::Fallback;
  static constexpr bool pooled = Shards::enabled || Buckets::enabled;
  static constexpr bool has_epochs = EpochSource<Shards>;
  // With buckets, every small request (1..256 bytes, align <= 8) is served
  // from a slab, and resize never lets a fallback block shrink into that
  // range: a small sized free is always a slab block.
  static constexpr bool small_means_pooled = Buckets::enabled;

  struct Options {
    PoolOptions pool{};
    LeakReport* leak_report = nullptr;  // written when the handle is destroyed
    bool print_leaks = true;            // also say so on stderr
    typename Fallback::Options fallback{};
  };

  BasicAllocatorHandle() : BasicAllocatorHandle(Options{}) {}
  explicit BasicAllocatorHandle(const Options& options)
      : fallback_(options.fallback),
        slabs_(fallback_.backing_allocator(), this),
        buckets_(slabs_, options.pool),
        shards_(slabs_, options.pool),
        leak_report_(options.leak_report),
        print_leaks_(options.print_leaks) {}
  BasicAllocatorHandle(const BasicAllocatorHandle&) = delete;  // pools point back at the handle
  BasicAllocatorHandle& operator=(const BasicAllocatorHandle&) = delete;

  ~BasicAllocatorHandle() {
    if constexpr (has_epochs) drain_retired(true);  // no reader may outlive the handle
    LeakReport r;
    if constexpr (counts_live) r = leaks();
    if (leak_report_ != nullptr) *leak_report_ = r;
    if (r.blocks != 0 && print_leaks_)
      std::fprintf(stderr, "sydra-alloc: leak: %llu blocks, %llu bytes still live when the %s handle was destroyed\n",
                   static_cast<unsigned long long>(r.blocks), static_cast<unsigned long long>(r.bytes), Policy::name);
  }

  // ---- Allocation fast path ------------------------------------------------
  void* alloc(std::size_t len, std::size_t align) noexcept {
    if constexpr (pooled) {
      // Small: 1..256 bytes (len 0 wraps around and fails the test) with an
      // alignment of 0, 1, 2, 4 or 8 (the bits of 0x117).
      if (SYDRA_LIKELY(len - 1 < max_pooled_size && align <= pool_alignment && ((0x117u >> align) & 1u))) {
        const unsigned cls = size_class_of(len);
        if constexpr (Shards::enabled) {
          if (void* p = shards_.alloc(cls)) return pooled_out(p);  // no lock, no atomic RMW
        }
        if constexpr (Buckets::enabled) return pooled_out(buckets_.alloc(cls));  // one lock round trip
      }
    }
    return alloc_fallback(len, align);
  }

  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    if (mem == nullptr || len == 0) return;
    if constexpr (!checked && Buckets::enabled && !Shards::enabled) {
      // Buckets only, trusted sized free: the size names the bucket, so not
      // even the slab header is read (2,000 slab headers at 64 KiB-aligned
      // addresses share cache sets; the free should not pay for that).
      if (len <= max_pooled_size && align <= pool_alignment) return buckets_.free_class(size_class_of(len), mem);
    }
    if constexpr (pooled) {
      if (SlabHeader* slab = find_slab(mem, len, align, /*freeing=*/true)) {
        // The class from the sized free: checked builds have verified it
        // against the slab; unchecked builds need not wait for the header.
        const unsigned cls = size_class_of(len);
        if constexpr (Shards::enabled) {
          if (shards_.try_free_local(slab, mem, cls)) return;  // this thread's shard: no atomics
          if (slab->kind == SlabKind::shard) return shards_.free(slab, mem, cls);
        }
        if constexpr (Buckets::enabled) return buckets_.free(slab, mem);
      }
    }
    fallback_.free(mem, len, normalize_align(align));
  }
  // ---- End of the fast path --------------------------------------------------

  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if (mem == nullptr || len == 0 || !valid_request(new_len, align)) return false;
    if constexpr (pooled) {
      if (SlabHeader* slab = find_slab(mem, len, align, false)) return same_class(slab, new_len, align);
      if (small_means_pooled && new_len <= max_pooled_size && align <= pool_alignment) return false;
    }
    return fallback_.resize(mem, len, align, new_len);
  }

  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if (mem == nullptr || len == 0 || !valid_request(new_len, align)) return nullptr;
    if constexpr (pooled) {
      if (SlabHeader* slab = find_slab(mem, len, align, false)) {
        if (same_class(slab, new_len, align)) return mem;
        return move_block(mem, len, align, new_len);  // across classes, or out to the fallback
      }
      if (new_len <= max_pooled_size && align <= pool_alignment) return move_block(mem, len, align, new_len);
    }
    return fallback_.remap(mem, len, align, new_len);
  }

  Allocator allocator() noexcept { return Allocator::of(*this); }

  // Live blocks and bytes across every policy: what a destroyed handle
  // reports. Present only when some policy counts (unchecked mimalloc mode
  // keeps no counts, as the seed's did not).
  static constexpr bool counts_live = LiveCounter<Fallback> || LiveCounter<Buckets> || LiveCounter<Shards>;

  template <class F = Fallback>
    requires(LiveCounter<F> || LiveCounter<Buckets> || LiveCounter<Shards>)
  LeakReport leaks() noexcept {
    LeakReport r;
    auto add = [&r](LeakReport x) {
      r.blocks += x.blocks;
      r.bytes += x.bytes;
    };
    if constexpr (LiveCounter<Fallback>) add(fallback_.live());
    if constexpr (LiveCounter<Buckets>) add(buckets_.live());
    if constexpr (LiveCounter<Shards>) add(shards_.live());
    return r;
  }

  // Optional members are templates over a defaulted parameter, so an explicit
  // instantiation of the handle (lib/modes.cpp) never instantiates one whose
  // mixin the policy lacks.

  // ---- Stats mixin -----------------------------------------------------------
  template <class F = Fallback>
    requires(StatsSource<F> || StatsSource<Buckets> || StatsSource<Shards>)
  Stats snapshot_stats() noexcept {
    Stats s;
    s.mode = Policy::name;
    if constexpr (StatsSource<Fallback>) fallback_.collect_stats(s);
    if constexpr (StatsSource<Buckets>) buckets_.collect_stats(s);
    if constexpr (StatsSource<Shards>) shards_.collect_stats(s);
    return s;
  }

  // ---- Epoch mixin -----------------------------------------------------------
  // Empty optionals when no shard manager runs (allocator_shards = 0, or it
  // could not be created), exactly as in the seed. enter_epoch() is also
  // empty when this thread cannot take part (no memory for its epoch slot,
  // or the thread is exiting): an empty result always means "not pinned, do
  // not read shared structures that rely on the epoch".
  template <class S = Shards>
    requires EpochSource<S>
  std::optional<std::uint64_t> enter_epoch() noexcept {
    return shards_.enter_epoch();
  }
  template <class S = Shards>
    requires EpochSource<S>
  void leave_epoch(std::uint64_t observed) noexcept {
    shards_.leave_epoch(observed);
  }
  template <class S = Shards>
    requires EpochSource<S>
  std::optional<std::uint64_t> advance_epoch() noexcept {
    return shards_.advance_epoch();
  }

  // Frees the block once no thread pinned at or before the current epoch is
  // still pinned. Until then the block is neither written nor poisoned:
  // pinned readers may still follow pointers stored anywhere in it (a
  // lock-free list's `next`), so the bookkeeping lives in a side record.
  // False only when that record could not be allocated: the block is then
  // untouched and still the caller's.
  template <class S = Shards>
    requires EpochSource<S>
  bool retire(void* mem, std::size_t len, std::size_t align) noexcept {
    if (mem == nullptr || len == 0) return true;
    align = normalize_align(align);
    if (!shards_.running()) {  // nobody can be pinned: nothing to wait for
      free(mem, len, align);
      return true;
    }
    if constexpr (checked) {  // diagnose a bad pointer now; the live bit clears at the real free
      if (SlabHeader* slab = Pagemap::lookup(mem)) check_slab(slab, mem, len, align, false);
    }
    Allocator backing = fallback_.backing_allocator();
    void* rec_mem = backing.alloc(sizeof(detail::RetiredRecord), alignof(detail::RetiredRecord));
    if (rec_mem == nullptr) return false;
    auto* rec = ::new (rec_mem) detail::RetiredRecord{nullptr, mem, len, align, shards_.current_epoch()};
    detail::RetiredRecord* head = retired_.load(std::memory_order_relaxed);
    do {
      rec->next = head;
    } while (!retired_.compare_exchange_weak(head, rec, std::memory_order_release, std::memory_order_relaxed));
    return true;
  }

  // Reclaims every deferred block the epoch invariant allows, in every shard
  // and in the retire list. Safe from any thread. Returns the blocks reclaimed.
  template <class S = Shards>
    requires EpochSource<S>
  std::size_t collect_garbage() noexcept {
    // Retired blocks first: a reclaimable one is freed normally, and if its
    // shard belongs to another thread, the deferral that free makes is
    // collected in the same call.
    shards_.advance_epoch();
    const std::size_t drained = drain_retired(false);
    return drained + shards_.collect();
  }

  Fallback& fallback() noexcept { return fallback_; }
  Shards& shards() noexcept { return shards_; }
  Buckets& buckets() noexcept { return buckets_; }

 private:
  SYDRA_SLOW_PATH void* alloc_fallback(std::size_t len, std::size_t align) noexcept {
    align = normalize_align(align);
    if (SYDRA_UNLIKELY(!valid_request(len, align))) return refuse_request(len, align);
    return fallback_.alloc(len, align);
  }

  // Checked builds mark each pooled block live, so a second free is caught.
  SYDRA_FAST_PATH void* pooled_out(void* p) noexcept {
    if constexpr (checked) {
      if (p != nullptr) {
        SlabHeader* slab = Pagemap::lookup(p);
        slab->mark_live(static_cast<std::size_t>(slab->index_of(p)), true);
      }
    }
    return p;
  }

  // The slab holding mem, or nullptr for a fallback block. Unchecked builds
  // trust (len, align): a block that cannot be pooled needs no lookup, and a
  // small one (with buckets, see small_means_pooled) has its header at the
  // slab-aligned base. Checked builds always ask the Pagemap, which reads
  // only sydra-alloc's own memory, and diagnose whatever does not match.
  SYDRA_FAST_PATH SlabHeader* find_slab(void* mem, std::size_t len, std::size_t align, bool freeing) noexcept {
    if constexpr (!checked) {
      if (len > max_pooled_size || align > pool_alignment) return nullptr;
      if constexpr (small_means_pooled)
        return reinterpret_cast<SlabHeader*>(reinterpret_cast<std::uintptr_t>(mem) & ~(slab_bytes - 1));
    }
    SlabHeader* slab = Pagemap::lookup(mem);
    if constexpr (checked) {
      if (slab != nullptr) check_slab(slab, mem, len, align, freeing);
    }
    return slab;
  }

  SYDRA_SLOW_PATH void check_slab(SlabHeader* slab, void* mem, std::size_t len, std::size_t align,
                                  bool freeing) noexcept {
    align = normalize_align(align);
    if (slab->handle != this) report_misuse(Misuse::foreign_pointer, "block belongs to another handle", mem, len, align);
    const std::ptrdiff_t idx = slab->index_of(mem);
    if (idx < 0) report_misuse(Misuse::interior_pointer, "pointer is not the start of a pooled block", mem, len, align);
    if (len > max_pooled_size || size_class_of(len) != slab->size_class)
      report_misuse(Misuse::size_mismatch, "length does not match the pooled block's size class", mem, len, align);
    if (align > pool_alignment)
      report_misuse(Misuse::alignment_mismatch, "over-aligned free of a pooled block (wrong path)", mem, len, align);
    const bool was_live = freeing ? slab->mark_live(static_cast<std::size_t>(idx), false)
                                  : (slab->live[idx / 64].load(std::memory_order_relaxed) >> (idx % 64)) & 1;
    if (!was_live) report_misuse(Misuse::double_free, "pooled block is not live (double free)", mem, len, align);
  }

  static bool same_class(const SlabHeader* slab, std::size_t new_len, std::size_t align) noexcept {
    return new_len <= max_pooled_size && align <= pool_alignment && size_class_of(new_len) == slab->size_class;
  }

  void* move_block(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    void* p = alloc(new_len, align);
    if (p == nullptr) return nullptr;  // the old block stays valid
    std::memcpy(p, mem, std::min(len, new_len));
    free(mem, len, align);
    return p;
  }

  template <class S = Shards>
    requires EpochSource<S>
  std::size_t drain_retired(bool everything) noexcept {
    detail::RetiredRecord* all = retired_.exchange(nullptr, std::memory_order_acquire);
    // After the exchange, as in ThreadShards::collect_class: a pin that came
    // before any of these retires is then visible to the scan.
    const std::uint64_t safe_below = everything ? EpochDomain::nobody_pinned : shards_.min_pinned();
    detail::RetiredRecord* keep = nullptr;
    std::size_t freed = 0;
    Allocator backing = fallback_.backing_allocator();
    while (all != nullptr) {
      detail::RetiredRecord* next = all->next;
      if (EpochDomain::reclaimable(all->epoch, safe_below)) {
        free(all->mem, all->len, all->align);
        backing.free(all, sizeof(detail::RetiredRecord), alignof(detail::RetiredRecord));
        ++freed;
      } else {
        all->next = keep;
        keep = all;
      }
      all = next;
    }
    while (keep != nullptr) {  // rare: push the survivors back one by one
      detail::RetiredRecord* next = keep->next;
      detail::RetiredRecord* head = retired_.load(std::memory_order_relaxed);
      do {
        keep->next = head;
      } while (!retired_.compare_exchange_weak(head, keep, std::memory_order_release, std::memory_order_relaxed));
      keep = next;
    }
    return freed;
  }

  [[no_unique_address]] Fallback fallback_;
  [[no_unique_address]] std::conditional_t<pooled, SlabSource, detail::NoSlabSource> slabs_;
  [[no_unique_address]] Buckets buckets_;
  [[no_unique_address]] Shards shards_;
  [[no_unique_address]] std::conditional_t<has_epochs, std::atomic<detail::RetiredRecord*>, detail::NoRetireList>
      retired_{};
  LeakReport* leak_report_;
  bool print_leaks_;
};

}  // namespace v1
}  // namespace sydra::alloc
