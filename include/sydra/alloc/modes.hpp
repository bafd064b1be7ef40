// The three allocator modes of the seed, as policies, and the one alias the
// build configures: sydra::alloc::AllocatorHandle.
//
//   mode        Shards           Buckets                    Fallback
//   default     NoShards         NoBuckets                  GeneralPurposeHeap (Audited<SystemHeap>)
//   mimalloc    NoShards         NoBuckets                  MimallocHeap (Audited in checked builds)
//   small_pool  ThreadShards<>   MutexBuckets<TimedLock<>>  Tracked<Checked<SystemHeap>>
//
// small_pool pools 16 B to 64 KiB (wide_spec, 47 classes); the seed pooled
// 16-256 B in 9 (seed_spec, still the table of a policy that names none).
//
// The policies are fixed; the Meson options (allocator_shards, stats,
// lock_timing) only shape ConfiguredPolicy, the policy AllocatorHandle names.
// The configured mode lives in an inline namespace (v1::mode_<name>, or
// v1_checked::mode_<name> in a checked build), so any
// function that takes an AllocatorHandle is mangled with the mode: objects
// built against different modes' config.hpp fail to link instead of breaking
// the one-definition rule in silence.
#pragma once

#include <sydra/alloc/handle.hpp>
#include <sydra/alloc/heap/tracked.hpp>
#include <sydra/alloc/policy/bucket.hpp>
#include <sydra/alloc/heap/mimalloc_heap.hpp>
#include <sydra/alloc/policy/shard.hpp>

#include <string_view>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

enum class Mode { default_heap = 0, mimalloc = 1, small_pool = 2 };

struct DefaultPolicy {
  static constexpr const char* name = "default";
  using Shards = NoShards;
  using Buckets = NoBuckets;
  using Fallback = GeneralPurposeHeap;
};

struct MimallocPolicy {
  static constexpr const char* name = "mimalloc";
  using Shards = NoShards;
  using Buckets = NoBuckets;
  using Fallback = std::conditional_t<checked, Audited<MimallocHeap>, MimallocHeap>;
};

// small_pool with its opt-ins spelled out: shard count, stats in every layer,
// whether the bucket locks are timed, and the size-class table.
template <std::size_t ShardCount, bool Stats, bool LockTiming, SizeClassSpec Table = wide_spec>
struct SmallPoolPolicyWith {
  static constexpr const char* name = "small_pool";
  static constexpr SizeClassSpec classes = Table;  // 16 B to 64 KiB; the seed pooled 16-256 B (seed_spec)
  using Shards = ThreadShards<ShardFeatures{.count = ShardCount, .epochs = true, .stats = Stats}>;
  using Buckets = MutexBuckets<std::conditional_t<LockTiming, TimedLock<>, PlainLock<>>, BucketFeatures{.stats = Stats}>;
  using Fallback = std::conditional_t<Stats, Tracked<Checked<SystemHeap>>, Checked<SystemHeap>>;
};

// small_pool: 4 shards, stats and lock timing on, 16 B to 64 KiB pooled.
struct SmallPoolPolicy : SmallPoolPolicyWith<4, true, true> {};
// The seed's small_pool exactly: the same, pooling 16-256 B in 9 classes.
struct SeedSmallPoolPolicy : SmallPoolPolicyWith<4, true, true, seed_spec> {};

// Common instantiations live in lib/modes.cpp, each handle's layers first
// (handle/layers.hpp: a base, which the handle's instantiation does not make).
extern template class detail::HandleLayers<DefaultPolicy>;
extern template class detail::HandleLayers<MimallocPolicy>;
extern template class detail::HandleLayers<SmallPoolPolicy>;
extern template class BasicAllocatorHandle<DefaultPolicy>;
extern template class BasicAllocatorHandle<MimallocPolicy>;
extern template class BasicAllocatorHandle<SmallPoolPolicy>;

static_assert(SYDRA_ALLOC_MODE == 0 || SYDRA_ALLOC_MODE == 1 || SYDRA_ALLOC_MODE == 2,
              "sydra-alloc: unknown allocator mode in config.hpp (SYDRA_ALLOC_MODE must be 0 = default, "
              "1 = mimalloc or 2 = small_pool)");

#if SYDRA_ALLOC_MODE == 0
#define SYDRA_ALLOC_MODE_NAMESPACE mode_default
#elif SYDRA_ALLOC_MODE == 1
#define SYDRA_ALLOC_MODE_NAMESPACE mode_mimalloc
#else
#define SYDRA_ALLOC_MODE_NAMESPACE mode_small_pool
#endif

inline namespace SYDRA_ALLOC_MODE_NAMESPACE {

inline constexpr Mode configured_mode = static_cast<Mode>(SYDRA_ALLOC_MODE);
inline constexpr bool is_mimalloc = configured_mode == Mode::mimalloc;
inline constexpr bool is_small_pool = configured_mode == Mode::small_pool;
inline constexpr std::string_view mode = is_small_pool ? "small_pool" : is_mimalloc ? "mimalloc" : "default";

// The configured policy, as a type of this namespace so that it carries the mode.
struct ConfiguredPolicy
    : std::conditional_t<is_small_pool,
                         SmallPoolPolicyWith<SYDRA_ALLOC_SHARDS, SYDRA_ALLOC_STATS != 0, SYDRA_ALLOC_LOCK_TIMING != 0>,
                         std::conditional_t<is_mimalloc, MimallocPolicy, DefaultPolicy>> {};

using AllocatorHandle = BasicAllocatorHandle<ConfiguredPolicy>;

}  // namespace SYDRA_ALLOC_MODE_NAMESPACE

// Instantiated by the library built for this mode only: linking against a
// library configured for another mode fails here.
extern template class detail::HandleLayers<ConfiguredPolicy>;
extern template class BasicAllocatorHandle<ConfiguredPolicy>;

#undef SYDRA_ALLOC_MODE_NAMESPACE

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
