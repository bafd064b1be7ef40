// What a policy must provide. BasicAllocatorHandle names these concepts in its
// requires-clause, so a policy that lacks a member fails with an error that
// says which concept and which requirement.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/policy/audited.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/slab/slab.hpp>

#include <concepts>
#include <cstdint>
#include <optional>

namespace sydra::alloc {
inline namespace v1 {

// The heap behind everything: serves what the pools do not, and lends them slabs.
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

// Size-classed pools under a lock. `enabled` false means "no buckets".
template <class B>
concept BucketPolicy = std::constructible_from<B, SlabSource&, const PoolOptions&> && requires {
  { B::enabled } -> std::convertible_to<bool>;
} && (!B::enabled || requires(B& b, SlabHeader* s, void* p, unsigned cls) {
  { b.alloc(cls) } noexcept -> std::same_as<void*>;
  { b.free(s, p) } noexcept;
});

// Per-thread pools with deferred cross-thread frees. `enabled` false means "no shards".
template <class S>
concept ShardPolicy = std::constructible_from<S, SlabSource&, const PoolOptions&> && requires {
  { S::enabled } -> std::convertible_to<bool>;
} && (!S::enabled || requires(S& s, SlabHeader* h, void* p, unsigned cls) {
  { s.alloc(cls) } noexcept -> std::same_as<void*>;
  { s.try_free_local(h, p, cls) } noexcept -> std::same_as<bool>;
  { s.free(h, p, cls) } noexcept;
  { s.running() } noexcept -> std::same_as<bool>;
});

// Optional mixins, detected rather than required.
template <class P>
concept StatsSource = requires(P& p, Stats& out) { p.collect_stats(out); };

template <class P>
concept LiveCounter = requires(P& p) {
  { p.live() } -> std::same_as<LeakReport>;
};

template <class S>
concept EpochSource = requires(S& s, std::uint64_t e) {
  { s.enter_epoch() } noexcept -> std::same_as<std::optional<std::uint64_t>>;
  { s.leave_epoch(e) } noexcept;
  { s.advance_epoch() } noexcept -> std::same_as<std::optional<std::uint64_t>>;
  { s.collect() } noexcept -> std::same_as<std::size_t>;
  { s.min_pinned() } noexcept -> std::same_as<std::uint64_t>;
};

// A whole policy: three parts and a name.
template <class P>
concept HandlePolicy = requires {
  typename P::Shards;
  typename P::Buckets;
  typename P::Fallback;
  { P::name } -> std::convertible_to<const char*>;
} && ShardPolicy<typename P::Shards> && BucketPolicy<typename P::Buckets> && FallbackPolicy<typename P::Fallback>;

}  // namespace v1
}  // namespace sydra::alloc
