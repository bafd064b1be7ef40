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
  std::size_t bytes_per_class = 8 * 1024;  // a shard's magazine: capacity = this / class size, within [min, max]
  std::uint32_t min_blocks = 16;
  std::uint32_t max_blocks = 64;
  std::size_t max_bytes_per_class = 128 * 1024;  // large classes: min_blocks gives way to this (at least 2 blocks)
};

struct PoolOptions {
  static constexpr std::size_t policy_shards = ~std::size_t{0};
  std::size_t shards = policy_shards;  // number of shards; policy_shards = the policy's count; 0 = no shard manager
  TimedLockConfig lock_timing{};       // bucket locks, when they are TimedLock
  CpuCacheOptions cpu_cache{};         // the bucket layer's per-CPU caches
  ShardCacheOptions shard_cache{};     // each shard's magazines
  SlabPoolOptions slabs{};             // reservation, retention and decommit
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
