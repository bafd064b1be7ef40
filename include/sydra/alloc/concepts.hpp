// What a policy must provide. BasicAllocatorHandle names these concepts in its
// requires-clause, so a policy that lacks a member fails with an error that
// says which concept and which requirement (docs/custom-policies.md shows
// each as the compiler prints it).
//
// A policy is a struct with a name and three parts:
//
//   struct MyPolicy {
//     static constexpr const char* name = "my-pool";
//     using Shards = sydra::alloc::ThreadShards<>;        // a ShardPolicy: NoShards, ThreadShards<...>
//     using Buckets = sydra::alloc::MutexBuckets<>;       // a BucketPolicy: NoBuckets, MutexBuckets<...>
//     using Fallback = sydra::alloc::Tracked<sydra::alloc::SystemHeap>;  // a FallbackPolicy
//     // optional: static constexpr SizeClassSpec classes{...}; or using Classes = SizeClassList<...>;
//     // optional: using Regions = sydra::alloc::FixedArena;   // where slabs come from (OsRegions)
//   };
//
// Shards and Buckets are recipes: the handle instantiates Recipe::Layer<Ctx>
// with its size classes and slab pool (PoolContext).
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/heap/tracked.hpp>
#include <sydra/alloc/heap/audited.hpp>
#include <sydra/alloc/policy/bucket.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/policy/shard.hpp>
#include <sydra/alloc/heap/system_heap.hpp>
#include <sydra/alloc/slab/regions.hpp>
#include <sydra/alloc/slab/slab_pool.hpp>

#include <concepts>
#include <cstdint>
#include <optional>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// What the pooled layers are instantiated with.
template <class ClassesT, class PoolT, bool Hardened = false>
struct PoolContext {
  using Classes = ClassesT;
  using Pool = PoolT;
  static constexpr bool hardened = Hardened;  // links encoded and checked (see slab_meta.hpp's Links)
};

namespace detail {
// The pool of a policy with no pooled layer: nothing.
struct NoPool {
  template <class O>
  constexpr NoPool(const void*, const SlabPoolOptions&, const O&) noexcept {}
  constexpr void tick() noexcept {}
};
template <class L>
consteval bool layer_has_epochs() {
  if constexpr (requires { L::has_epochs; }) return L::has_epochs;
  else return false;
}
using ProbeContext = PoolContext<SeedClasses, SlabPool<OsRegions>>;
}  // namespace detail

namespace detail {
template <class Policy>
consteval auto pick_regions() {
  if constexpr (requires { typename Policy::Regions; }) return static_cast<typename Policy::Regions*>(nullptr);
  else return static_cast<OsRegions*>(nullptr);
}
}  // namespace detail
// A policy is hardened if it says `static constexpr bool hardened = true;`.
template <class Policy>
consteval bool policy_hardened() {
  if constexpr (requires { { Policy::hardened } -> std::convertible_to<bool>; }) return Policy::hardened;
  else return false;
}
// Where a policy's slabs come from: Policy::Regions, else the OS.
template <class Policy>
using PolicyRegions = std::remove_pointer_t<decltype(detail::pick_regions<Policy>())>;

// The heap behind everything: serves what the pools do not, and lends the
// layers their bookkeeping memory (backing_allocator()).
template <class F>
concept FallbackPolicy = std::default_initializable<typename F::Options> &&
                         std::constructible_from<F, const typename F::Options&> &&
                         requires(F& f, void* p, std::size_t n) {
                           { f.alloc(n, n) } noexcept -> std::same_as<void*>;
                           { f.resize(p, n, n, n) } noexcept -> std::same_as<bool>;
                           { f.remap(p, n, n, n) } noexcept -> std::same_as<void*>;
                           { f.free(p, n, n) } noexcept;
                           { f.backing_allocator() } noexcept -> std::same_as<Allocator>;
                         };

// A bucket layer, as the handle instantiates it.
template <class L>
concept BucketLayerType = requires { { L::enabled } -> std::convertible_to<bool>; } &&
                          (!L::enabled || requires(L& l, SlabMeta* m, void* p, unsigned cls) {
                            { l.alloc(cls) } noexcept -> std::same_as<void*>;
                            { l.free(m, p) } noexcept;
                            { l.drain() } noexcept;
                          });
// A bucket recipe: `enabled` and a Layer<Ctx> template.
template <class B>
concept BucketPolicy = requires { { B::enabled } -> std::convertible_to<bool>; } &&
                       BucketLayerType<typename B::template Layer<detail::ProbeContext>>;

template <class L>
concept ShardLayerType = requires { { L::enabled } -> std::convertible_to<bool>; } &&
                         (!L::enabled || requires(L& l, SlabMeta* m, void* p, unsigned cls) {
                           { l.alloc(cls) } noexcept -> std::same_as<void*>;
                           { l.free(m, p) } noexcept;
                           { l.running() } noexcept -> std::same_as<bool>;
                           { l.collect() } noexcept -> std::same_as<std::size_t>;
                           { l.drain() } noexcept;
                           { l.shutdown() } noexcept;
                         });
template <class S>
concept ShardPolicy = requires { { S::enabled } -> std::convertible_to<bool>; } &&
                      ShardLayerType<typename S::template Layer<detail::ProbeContext>>;

// Optional mixins, detected rather than required.
template <class P>
concept StatsSource = requires(P& p, Stats& out) { p.collect_stats(out); };

template <class P>
concept LiveCounter = requires(P& p) {
  { p.live() } -> std::same_as<LeakReport>;
};

// ---- What a user sees when a policy is wrong ------------------------------------
// The handle checks a policy rule by rule, each with its own static_assert
// that names the rule and the fix, and then carries on with a stand-in
// policy, so that one mistake gives one error, not pages of them.
namespace detail {
template <class P>
concept HasName = requires {
  { P::name } -> std::convertible_to<const char*>;
};
template <class P>
concept HasParts = requires {
  typename P::Shards;
  typename P::Buckets;
  typename P::Fallback;
};
template <class F>
concept HasOptions = requires { typename F::Options; } && std::default_initializable<typename F::Options>;
template <class F>
concept FromOptions = HasOptions<F> && std::constructible_from<F, const typename F::Options&>;
template <class F>
concept HasAlloc = requires(F& f, std::size_t n) {
  { f.alloc(n, n) } noexcept -> std::same_as<void*>;
};
template <class F>
concept HasResize = requires(F& f, void* p, std::size_t n) {
  { f.resize(p, n, n, n) } noexcept -> std::same_as<bool>;
};
template <class F>
concept HasRemap = requires(F& f, void* p, std::size_t n) {
  { f.remap(p, n, n, n) } noexcept -> std::same_as<void*>;
};
template <class F>
concept HasFree = requires(F& f, void* p, std::size_t n) {
  { f.free(p, n, n) } noexcept;
};
template <class F>
concept HasBacking = requires(F& f) {
  { f.backing_allocator() } noexcept -> std::same_as<Allocator>;
};

template <class P, template <class> class Rule>
consteval bool part_ok(int which) {
  if constexpr (!HasParts<P>) {
    return true;  // reported once, by the parts rule
  } else if (which == 0) {
    return Rule<typename P::Shards>::value;
  } else if (which == 1) {
    return Rule<typename P::Buckets>::value;
  } else {
    return Rule<typename P::Fallback>::value;
  }
}
template <class T>
struct IsShardPolicy : std::bool_constant<ShardPolicy<T>> {};
template <class T>
struct IsBucketPolicy : std::bool_constant<BucketPolicy<T>> {};
template <class F>
constexpr bool fallback_rule(int rule) {
  switch (rule) {
    case 0: return HasOptions<F>;
    case 1: return FromOptions<F>;
    case 2: return HasAlloc<F>;
    case 3: return HasResize<F>;
    case 4: return HasRemap<F>;
    case 5: return HasFree<F>;
    default: return HasBacking<F>;
  }
}
template <class P>
consteval bool fallback_ok(int rule) {
  if constexpr (!HasParts<P>) return true;
  else return fallback_rule<typename P::Fallback>(rule);
}

template <class P>
struct PolicyRules {
  static_assert(HasName<P>, "sydra-alloc policy: needs `static constexpr const char* name = \"...\";` (it names the "
                            "handle in stats and leak reports)");
  static_assert(HasParts<P>, "sydra-alloc policy: needs three parts: `using Shards = ...; using Buckets = ...; using "
                             "Fallback = ...;` (NoShards and NoBuckets when a part is not wanted)");
  static_assert(part_ok<P, IsShardPolicy>(0), "sydra-alloc policy: Shards is not a ShardPolicy: use NoShards or "
                                              "ThreadShards<ShardFeatures{...}> (docs/custom-policies.md)");
  static_assert(part_ok<P, IsBucketPolicy>(1), "sydra-alloc policy: Buckets is not a BucketPolicy: use NoBuckets or "
                                               "MutexBuckets<Lock, BucketFeatures{...}> (docs/custom-policies.md)");
  static_assert(fallback_ok<P>(0), "sydra-alloc policy: Fallback is not a FallbackPolicy: it needs a nested "
                                   "`Options` type that is default-constructible (an empty struct will do)");
  static_assert(fallback_ok<P>(1), "sydra-alloc policy: Fallback is not a FallbackPolicy: it needs a constructor "
                                   "`explicit Fallback(const Options&)`");
  static_assert(fallback_ok<P>(2), "sydra-alloc policy: Fallback is not a FallbackPolicy: it needs "
                                   "`void* alloc(std::size_t len, std::size_t align) noexcept`");
  static_assert(fallback_ok<P>(3), "sydra-alloc policy: Fallback is not a FallbackPolicy: it needs "
                                   "`bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) "
                                   "noexcept`");
  static_assert(fallback_ok<P>(4), "sydra-alloc policy: Fallback is not a FallbackPolicy: it needs "
                                   "`void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) "
                                   "noexcept`");
  static_assert(fallback_ok<P>(5), "sydra-alloc policy: Fallback is not a FallbackPolicy: it needs "
                                   "`void free(void* mem, std::size_t len, std::size_t align) noexcept`");
  static_assert(fallback_ok<P>(6), "sydra-alloc policy: Fallback is not a FallbackPolicy: it needs "
                                   "`sydra::alloc::Allocator backing_allocator() noexcept` (memory for the layers' "
                                   "bookkeeping)");
  static_assert(RegionSource<PolicyRegions<P>>, "sydra-alloc policy: Regions is not a RegionSource: it needs Options, "
                                                "a constructor from Options, and noexcept reserve(n), release(p, n) and "
                                                "decommit(p, n) (slab/regions.hpp)");
};

// A stand-in for a policy that broke a rule: the handle goes on compiling
// with it, so that the rule's message is the only error.
struct StandInPolicy {
  static constexpr const char* name = "invalid policy";
  using Shards = NoShards;
  using Buckets = NoBuckets;
  using Fallback = SystemHeap;
};
}  // namespace detail

// A whole policy: three parts and a name.
template <class P>
concept HandlePolicy = requires {
  typename P::Shards;
  typename P::Buckets;
  typename P::Fallback;
  { P::name } -> std::convertible_to<const char*>;
} && ShardPolicy<typename P::Shards> && BucketPolicy<typename P::Buckets> && FallbackPolicy<typename P::Fallback> &&
                       RegionSource<PolicyRegions<P>>;

namespace detail {
// The policy a handle compiles with: the user's, or after a broken rule the stand-in.
template <class P>
using ValidPolicy = std::conditional_t<HandlePolicy<P>, P, StandInPolicy>;
}  // namespace detail

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
