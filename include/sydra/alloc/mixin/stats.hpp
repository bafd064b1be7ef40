// Stats: one versioned snapshot of everything a handle counts. Policies that
// opt into stats fill their part; the rest stays zero with has_* false.
// Counters are kept as blocks move, so taking a snapshot walks no free list.
#pragma once

#include <sydra/alloc/slab/size_classes.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sydra::alloc {
inline namespace v1 {

struct LockStats {
  std::uint64_t acquisitions = 0;
  std::uint64_t contended = 0;     // acquisitions whose wait exceeded the threshold
  std::uint64_t wait_ns = 0;       // total wait, measured only after a failed try_lock
  std::uint64_t max_wait_ns = 0;
  std::uint64_t hold_ns = 0;       // estimated total hold: sampled holds x sample period
  std::uint64_t hold_samples = 0;  // holds actually timed
  std::uint64_t threshold_ns = 0;
};

struct BucketStats {
  std::uint32_t size = 0;        // the class: largest request it serves
  std::uint32_t block_size = 0;  // bytes a block occupies in the slab
  std::uint64_t allocations = 0;
  std::uint64_t frees = 0;
  std::uint64_t refills = 0;
  std::uint64_t in_use = 0;
  std::uint64_t high_water = 0;
  std::uint64_t slabs = 0;
  std::uint64_t free_blocks = 0;  // carved or carvable blocks not in use
  LockStats lock;
};

struct FallbackStats {
  std::uint64_t allocs = 0;
  std::uint64_t frees = 0;
  std::uint64_t resizes = 0;
  std::uint64_t remaps = 0;
  std::array<std::uint64_t, fallback_bins> sizes{};  // bin i counts len <= bounds[i]; last = larger
  static constexpr auto bounds = fallback_bounds;
};

struct ShardClassStats {
  std::uint32_t size = 0;
  std::uint64_t allocations = 0;
  std::uint64_t in_use = 0;
  std::uint64_t deferred = 0;   // frees queued on this class by other threads or retire()
  std::uint64_t reclaimed = 0;  // deferred blocks made reusable by collect
};

struct ShardStats {
  std::uint32_t index = 0;
  bool owned = false;
  std::uint64_t alloc_hits = 0;
  std::uint64_t backlog = 0;  // deferred - reclaimed
  std::array<ShardClassStats, class_count> classes{};
};

struct ShardSummary {
  std::uint64_t shard_count = 0;
  std::uint64_t alloc_hits = 0;
  std::uint64_t alloc_misses = 0;  // small allocations by threads without a shard
  std::uint64_t deferred_total = 0;
  std::uint64_t reclaimed_total = 0;
  std::uint64_t backlog = 0;
  std::uint64_t current_epoch = 0;
  std::uint64_t min_pinned_epoch = 0;  // 0 when no thread is pinned
  std::uint64_t pinned_threads = 0;
  std::vector<ShardStats> shards;
};

struct Stats {
  static constexpr std::uint32_t current_version = 1;
  std::uint32_t version = current_version;
  std::string_view mode;
  bool has_buckets = false;
  bool has_fallback = false;
  bool has_shards = false;
  std::array<BucketStats, class_count> buckets{};
  FallbackStats fallback;
  ShardSummary shards;
};

// A counter that compiles away when stats are off. Single-writer counters
// (updated under a lock or by an owning thread) use bump(); shared ones use
// add(), an atomic read-modify-write. Both are torn-free to read.
template <bool Enabled = stats_enabled>
struct Counter {
  std::atomic<std::uint64_t> v{0};
  void bump(std::uint64_t n = 1) noexcept { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_release); }
  void drop(std::uint64_t n = 1) noexcept { v.store(v.load(std::memory_order_relaxed) - n, std::memory_order_release); }
  void add(std::uint64_t n = 1) noexcept { v.fetch_add(n, std::memory_order_acq_rel); }
  void set(std::uint64_t n) noexcept { v.store(n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_acquire); }
};
template <>
struct Counter<false> {
  void bump(std::uint64_t = 1) noexcept {}
  void drop(std::uint64_t = 1) noexcept {}
  void add(std::uint64_t = 1) noexcept {}
  void set(std::uint64_t) noexcept {}
  std::uint64_t get() const noexcept { return 0; }
};

}  // namespace v1
}  // namespace sydra::alloc
