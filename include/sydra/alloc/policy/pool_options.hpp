// Run-time options for the pooled policies, passed by the handle.
#pragma once

#include <sydra/alloc/mixin/lock_timing.hpp>

#include <cstddef>

namespace sydra::alloc {
inline namespace v1 {

struct PoolOptions {
  std::size_t shards = SYDRA_ALLOC_SHARDS;  // -Dallocator_shards; 0 = no shard manager
  TimedLockConfig lock_timing{};            // bucket locks, when they are TimedLock
};

}  // namespace v1
}  // namespace sydra::alloc
