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
#include <sydra/alloc/mixin/tracked.hpp>
#include <sydra/alloc/policy/audited.hpp>
#include <sydra/alloc/policy/bucket.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/policy/shard.hpp>
#include <sydra/alloc/policy/system_heap.hpp>
#include <sydra/alloc/slab/regions.hpp>
#include <sydra/alloc/slab/slab_pool.hpp>

#include <concepts>
#include <cstdint>
#include <optional>

namespace sydra::alloc {
inline namespace v1 {

// What the pooled layers are instantiated with.
template <class ClassesT, class PoolT>
struct PoolContext {
  using Classes = ClassesT;
  using Pool = PoolT;
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

// A whole policy: three parts and a name.
template <class P>
concept HandlePolicy = requires {
  typename P::Shards;
  typename P::Buckets;
  typename P::Fallback;
  { P::name } -> std::convertible_to<const char*>;
} && ShardPolicy<typename P::Shards> && BucketPolicy<typename P::Buckets> && FallbackPolicy<typename P::Fallback> &&
                       RegionSource<PolicyRegions<P>>;

}  // namespace v1
}  // namespace sydra::alloc
