// Every use of the sydra-alloc API by the benchmarks, in one place, so that a
// change of the library's internals (policies, options, trim, retire) is
// followed here and nowhere else. The shapes see only the adapters below,
// which have the same members as the peers' (peers.hpp):
//
//   void* alloc(std::size_t n, std::size_t align);
//   void  free(void* p, std::size_t n, std::size_t align);
//   static bool available(std::string* why);
//
// Members that a handle may not have yet (trim) are called through
// `if constexpr (requires ...)`, and the report says when one was missing.
#pragma once

#include <sydra/alloc/modes.hpp>
#include <sydra/alloc/pmr.hpp>
#include <sydra/alloc/stl.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>

namespace sydra_bench {

namespace sa = sydra::alloc;

// The small_pool mode's policy, used as a program would: shards -> buckets -> glibc.
using SydraHandle = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

// Shards of the shared handle: the library's default (-Dallocator_shards).
inline constexpr std::size_t kShards = 4;

// One 4-shard handle for every shard shape. A thread binds to it once and
// keeps its shard: switching a thread between sharded handles rebinds its
// thread-local cache, which is not what any shape measures. Threads beyond
// the fourth get no shard and take the bucket path (the 8- and 64-thread
// churns measure exactly that).
inline SydraHandle& shard_handle() {
  static SydraHandle h(SydraHandle::Options{.pool = {.shards = kShards}});
  return h;
}

// small_pool with no shard manager (-Dallocator_shards=0): the bucket path
// after a failed shard lookup, as every thread without a shard takes it.
inline SydraHandle& noshard_handle() {
  static SydraHandle h(SydraHandle::Options{.pool = {.shards = 0}});
  return h;
}

// The templated handle, called directly: what code that names the handle type gets.
struct Sydra {
  SydraHandle& h = shard_handle();
  static bool available(std::string*) { return true; }
  void* alloc(std::size_t n, std::size_t align) noexcept { return h.alloc(n, align); }
  void free(void* p, std::size_t n, std::size_t align) noexcept { h.free(p, n, align); }
};

struct SydraNoShard {
  SydraHandle& h = noshard_handle();
  static bool available(std::string*) { return true; }
  void* alloc(std::size_t n, std::size_t align) noexcept { return h.alloc(n, align); }
  void free(void* p, std::size_t n, std::size_t align) noexcept { h.free(p, n, align); }
};

// A variant whose policy is its own, on a 4-shard handle of its own.
template <class Policy>
struct OwnHandle {
  using Handle = sa::BasicAllocatorHandle<Policy>;
  static Handle& handle() {
    static Handle h(typename Handle::Options{.pool = {.shards = kShards}});
    return h;
  }
  Handle& h = handle();
  static bool available(std::string*) { return true; }
  void* alloc(std::size_t n, std::size_t align) noexcept { return h.alloc(n, align); }
  void free(void* p, std::size_t n, std::size_t align) noexcept { h.free(p, n, align); }
};

// small_pool with the hardened opt-in (freed-block canaries, encoded free-list
// links): what the hardening costs on the same shapes.
struct HardenedPolicy : sa::SmallPoolPolicy {
  static constexpr const char* name = "small_pool-hardened";
  static constexpr bool hardened = true;
};
static_assert(sa::BasicAllocatorHandle<HardenedPolicy>::hardened);
struct SydraHardened : OwnHandle<HardenedPolicy> {};

// small_pool without its stats and lock-timing opt-ins: what the counters
// cost on the same shapes (a policy that does not opt in pays nothing).
using LeanPolicy = sa::SmallPoolPolicyWith<kShards, false, false>;
struct SydraLean : OwnHandle<LeanPolicy> {};

// small_pool with the heap profiler on at its default mean (512 KiB): what
// sampling costs on the same shapes (docs/profiling.md).
struct ProfiledPolicy : sa::SmallPoolPolicy {
  using Profiling = sa::HeapProfiling;
};
struct SydraProfiled : OwnHandle<ProfiledPolicy> {};

// Through the type-erased Allocator (two pointers, one indirect call per
// operation) with its default alignment, as engine code that is handed an
// Allocator calls it. The align argument is ignored on purpose: the shapes
// register this variant at alignment 16 only.
struct SydraErased {
  sa::Allocator a = shard_handle().allocator();
  static constexpr std::size_t default_align = alignof(std::max_align_t);
  static bool available(std::string*) { return true; }
  void* alloc(std::size_t n, std::size_t) noexcept { return a.alloc(n); }
  void free(void* p, std::size_t n, std::size_t) noexcept { a.free(p, n); }
};

// ---- Standard containers (BM_Container) ---------------------------------------------
// The adapters of stl.hpp and pmr.hpp over the shared 4-shard handle, each
// form as engine code would write it. A Container* variant names the
// allocator for a value type (Alloc<T>) and makes one (make<A>()).

// StlAllocator<T>: over the handle's type-erased Allocator (an indirect call
// per allocate and per deallocate).
struct ContainerStlErased {
  template <class T>
  using Alloc = sa::StlAllocator<T>;
  template <class A>
  static A make() {
    return A(shard_handle().allocator());
  }
};

// StlAllocator<T, Handle>: over the handle itself (its fast path inlined).
struct ContainerStlConcrete {
  template <class T>
  using Alloc = sa::StlAllocator<T, SydraHandle>;
  template <class A>
  static A make() {
    return A(shard_handle());
  }
};

// pmr over MemoryResource (pmr's virtual call, then the Allocator's indirect call).
struct ContainerPmrErased {
  template <class T>
  using Alloc = std::pmr::polymorphic_allocator<T>;
  template <class A>
  static A make() {
    static sa::MemoryResource resource(shard_handle().allocator());
    return A(&resource);
  }
};

// pmr over BasicMemoryResource<Handle> (pmr's virtual call only).
struct ContainerPmrConcrete {
  template <class T>
  using Alloc = std::pmr::polymorphic_allocator<T>;
  template <class A>
  static A make() {
    static sa::BasicMemoryResource<SydraHandle> resource(shard_handle());
    return A(&resource);
  }
};

// ---- Epochs and retire ------------------------------------------------------------

inline std::optional<std::uint64_t> sydra_enter_epoch(SydraHandle& h) noexcept { return h.enter_epoch(); }
inline void sydra_leave_epoch(SydraHandle& h, std::uint64_t e) noexcept { h.leave_epoch(e); }
inline bool sydra_retire(SydraHandle& h, void* p, std::size_t n, std::size_t align) noexcept {
  return h.retire(p, n, align);
}
inline std::size_t sydra_collect(SydraHandle& h) noexcept { return h.collect_garbage(); }

// ---- Trim -------------------------------------------------------------------------

template <class H>
inline constexpr bool has_trim = requires(H& h) { h.trim(); };

// Bytes given back to the OS, or nothing when the handle has no trim() yet.
template <class H>
std::optional<std::size_t> sydra_trim(H& h) noexcept {
  if constexpr (has_trim<H>) {
    return static_cast<std::size_t>(h.trim());
  } else {
    (void)h;
    return std::nullopt;
  }
}

// ---- The bucket path alone (BM_BucketFree_Slabs) -----------------------------------

// No shard manager at all, TimedLock buckets: the policy the slab-count
// family has measured since it was written.
struct BucketOnlyPolicy {
  static constexpr const char* name = "bench-buckets";
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<sa::TimedLock<>>;
  using Fallback = sa::Tracked<sa::Audited<sa::SystemHeap>>;
};
using BucketOnlyHandle = sa::BasicAllocatorHandle<BucketOnlyPolicy>;

struct BucketOnly {
  BucketOnlyHandle& h;
  void* alloc(std::size_t n, std::size_t align) noexcept { return h.alloc(n, align); }
  void free(void* p, std::size_t n, std::size_t align) noexcept { h.free(p, n, align); }
};

inline std::unique_ptr<BucketOnlyHandle> make_bucket_only_handle(bool huge_pages = false) {
  BucketOnlyHandle::Options o;
  o.pool.slabs.huge_pages = huge_pages;
  return std::make_unique<BucketOnlyHandle>(o);
}

// The slab a pooled block lives in, as an opaque identity (whatever the
// Pagemap maps to: a header or an off-slab record), nullptr otherwise. The
// slab family counts blocks per slab with it instead of computing the
// layout, so a change of slab layout needs nothing here.
inline const void* slab_of(const void* p) noexcept { return sa::Pagemap::lookup(p); }

// For the report: what was measured.
inline std::string sydra_description() {
  return std::string("BasicAllocatorHandle<") + sa::SmallPoolPolicy::name + ">, " + std::to_string(kShards) +
         " shards; trim() " + (has_trim<SydraHandle> ? "present" : "absent");
}

}  // namespace sydra_bench
