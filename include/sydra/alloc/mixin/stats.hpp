// Stats: one versioned snapshot of everything a handle counts. Layers that
// opt into stats fill their part; the rest stays empty with has_* false.
// Counters are kept as blocks move, so a snapshot walks no free list.
//
// Field by field, with units and when each is exact: docs/stats.md.
#pragma once

#include <sydra/alloc/slab/size_classes.hpp>
#include <sydra/alloc/slab/slab_pool.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct LockStats {
  std::uint64_t acquisitions = 0;
  std::uint64_t contended = 0;     // acquisitions whose wait exceeded threshold_ns
  std::uint64_t wait_ns = 0;       // total wait, measured only after a failed try_lock
  std::uint64_t max_wait_ns = 0;
  std::uint64_t hold_ns = 0;       // estimated total hold: sampled holds x sample period
  std::uint64_t hold_samples = 0;  // holds actually timed
  std::uint64_t threshold_ns = 0;
};

// One size class of the bucket layer: the per-CPU caches and the central
// bucket behind them, used by threads that own no shard.
struct BucketStats {
  std::uint32_t size = 0;        // the class: largest request it serves
  std::uint32_t block_size = 0;  // bytes a block occupies in the slab
  std::uint64_t allocations = 0;
  std::uint64_t frees = 0;
  std::uint64_t in_use = 0;      // allocations - frees
  std::uint64_t high_water = 0;  // highest in_use seen at a refill, a flush or a snapshot
  std::uint64_t refills = 0;     // batches the bucket gave the per-CPU caches
  std::uint64_t flushes = 0;     // batches the per-CPU caches gave back
  std::uint64_t cached = 0;      // free blocks in the per-CPU caches and the bucket's transfer stack
  std::uint64_t slabs = 0;
  std::uint64_t free_blocks = 0;  // blocks of the bucket's slabs not in use (cached, on free lists, never carved)
  LockStats lock;
};

struct FallbackStats {
  std::uint64_t allocs = 0;
  std::uint64_t frees = 0;
  std::uint64_t resizes = 0;
  std::uint64_t remaps = 0;
  std::array<std::uint64_t, fallback_bins> sizes{};  // bin i counts len <= bounds[i]; last = larger
  static constexpr auto bounds = fallback_bounds;
  std::uint64_t blocks_live = 0;
  std::uint64_t bytes_live = 0;
  bool counts_underflow = false;  // more frees than allocs were counted: see LeakReport
};

struct ShardClassStats {
  std::uint32_t size = 0;
  std::uint64_t allocations = 0;  // hand-outs by the owning thread
  std::uint64_t frees = 0;        // the owner's frees of its own blocks
  std::uint64_t in_use = 0;       // allocations - frees - deferred: includes blocks in flight to this shard
  std::uint64_t deferred = 0;     // frees of this shard's blocks by other threads, published to it
  std::uint64_t reclaimed = 0;    // deferred blocks the shard took back (its owner, or a collect)
  std::uint64_t cached = 0;       // free blocks in the class's head (what is left of its last fill)
  std::uint64_t slabs = 0;
};

struct ShardStats {
  std::uint32_t index = 0;
  bool owned = false;
  bool abandoned = false;  // a fork's child found it mid-change and will never use it (Shard::busy)
  std::uint64_t alloc_hits = 0;
  std::uint64_t backlog = 0;           // deferred - reclaimed
  std::uint64_t reserved_bytes = 0;    // slabs held by this shard x 64 KiB
  std::vector<ShardClassStats> classes;
};

struct ShardSummary {
  std::uint64_t shard_count = 0;
  std::uint64_t alloc_hits = 0;
  std::uint64_t alloc_misses = 0;  // small allocations served by the bucket layer instead
  std::uint64_t deferred_total = 0;
  std::uint64_t reclaimed_total = 0;
  std::uint64_t backlog = 0;
  std::uint64_t in_transit = 0;  // remote frees held in their freeing thread's batch, not yet published
  std::uint64_t current_epoch = 0;
  std::uint64_t min_pinned_epoch = 0;  // 0 when no thread is pinned
  std::uint64_t pinned_threads = 0;
  std::uint64_t retired = 0;          // retire() calls that deferred a block
  std::uint64_t retired_pending = 0;  // of those, not yet reclaimed
  std::vector<ShardStats> shards;
};

struct Stats {
  static constexpr std::uint32_t current_version = 2;
  std::uint32_t version = current_version;
  std::string_view mode;
  bool has_buckets = false;
  bool has_fallback = false;
  bool has_shards = false;
  bool has_epochs = false;  // the shard layer keeps epochs (the epoch and retire fields mean something)
  bool has_memory = false;
  std::vector<std::uint32_t> classes;  // the handle's size classes
  std::vector<BucketStats> buckets;
  FallbackStats fallback;
  ShardSummary shards;
  MemoryStats memory;
};

// A counter written by one thread at a time (its owner, or the holder of a
// lock) and read by snapshots: a relaxed load and a release store, never an
// atomic read-modify-write. Compiles away when a layer keeps no stats.
template <bool Enabled = true>
struct Counter {
  std::atomic<std::uint64_t> v{0};
  SYDRA_FAST_PATH void bump(std::uint64_t n = 1) noexcept {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  void set(std::uint64_t n) noexcept { v.store(n, std::memory_order_release); }
  // Shared counters (rare paths only): an atomic add.
  void add(std::uint64_t n = 1) noexcept { v.fetch_add(n, std::memory_order_acq_rel); }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_acquire); }
};
template <>
struct Counter<false> {
  SYDRA_FAST_PATH void bump(std::uint64_t = 1) noexcept {}
  void set(std::uint64_t) noexcept {}
  void add(std::uint64_t = 1) noexcept {}
  std::uint64_t get() const noexcept { return 0; }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
