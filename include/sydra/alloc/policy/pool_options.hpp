// Run-time options for the pooled layers, passed by the handle
// (BasicAllocatorHandle::Options::pool). Every field has a default that the
// policy's compile-time choices already make; set one to override it for one
// handle.
#pragma once

#include <sydra/alloc/cache/cpu_caches.hpp>
#include <sydra/alloc/mixin/lock_timing.hpp>
#include <sydra/alloc/slab/slab_pool.hpp>

#include <cstddef>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct ShardCacheOptions {
  std::size_t carve_bytes = 4 * 1024;  // a shard carves this much of a slab's untouched tail at a time (at least 16 blocks)
  std::uint32_t remote_batch = 64;     // a thread's frees of one remote slab, batched before they are published
};

struct PoolOptions {
  static constexpr std::size_t policy_shards = ~std::size_t{0};
  std::size_t shards = policy_shards;  // number of shards; policy_shards = the policy's count; 0 = no shard manager
  TimedLockConfig lock_timing{};       // bucket locks, when they are TimedLock
  CpuCacheOptions cpu_cache{};         // the bucket layer's per-CPU caches
  ShardCacheOptions shard_cache{};     // how each shard carves its slabs and batches its remote frees
  SlabPoolOptions slabs{};             // reservation, retention and decommit
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
