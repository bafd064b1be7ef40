// HandleLayers<Policy>: the layers a policy names, built and held together,
// and what goes to all of them at once: fork()'s locks, the leak report, the
// stats snapshot, trim(), the epochs. BasicAllocatorHandle derives from it and
// routes each request to one layer (handle.hpp); apart, so that the routing
// and its fast path read on their own.
//
// Optional members are templates over a defaulted parameter, so an explicit
// instantiation (lib/modes.cpp) never instantiates one whose layer lacks it.
#pragma once

#include <sydra/alloc/concepts.hpp>
#include <sydra/alloc/detail/fork_guard.hpp>
#include <sydra/alloc/prof/profiling.hpp>
#include <sydra/alloc/slab/idle_return.hpp>

#include <cstdio>
#include <optional>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {

template <class Policy>  // a policy that keeps every rule (ValidPolicy)
class HandleLayers {
 public:
  using Classes = PolicyClasses<Policy>;
  using Regions = PolicyRegions<Policy>;
  static constexpr bool pooled = Policy::Shards::enabled || Policy::Buckets::enabled;
  using Pool = std::conditional_t<pooled, SlabPool<Regions>, detail::NoPool>;
  static constexpr bool hardened = policy_hardened<Policy>();
  using Ctx = PoolContext<Classes, Pool, hardened>;
  using Shards = typename Policy::Shards::template Layer<Ctx>;
  using Buckets = typename Policy::Buckets::template Layer<Ctx>;
  using Fallback = typename Policy::Fallback;
  static constexpr bool has_epochs = detail::layer_has_epochs<Shards>();
  static constexpr bool has_stats = StatsSource<Fallback> || StatsSource<Buckets> || StatsSource<Shards>;
  using Profiler = typename PolicyProfiling<Policy>::Layer;  // NoProfiling's is empty (prof/profiling.hpp)
  static constexpr bool profiled = Profiler::enabled;

  struct Options {
    PoolOptions pool{};
    LeakReport* leak_report = nullptr;  // written when the handle is destroyed
    bool print_leaks = true;            // also say so on stderr
    typename Fallback::Options fallback{};
    typename Regions::Options regions{};
    typename Profiler::Options profiling{};
  };

  // A handle with a lock registers with the fork guard (detail/fork_guard.hpp).
  static constexpr bool has_fork_locks = pooled || profiled || requires(Fallback& f) { f.fork_lock(); };

  HandleLayers(const HandleLayers&) = delete;  // pools point back at the handle
  HandleLayers& operator=(const HandleLayers&) = delete;

  // fork() in a threaded process, for every handle with a lock: it registers
  // with detail/fork_guard.hpp when built, whose pthread_atfork handlers take
  // the process-wide locks (the thread registry's, the idle list's) once and
  // call these for each handle. Every lock of every layer is taken before the
  // fork in the order the paths nest them (retire bags, CPU caches and
  // buckets, slab pool, fallback), and released after it in the parent and
  // in the child, so the child never inherits a lock that a thread it does
  // not have was holding.
  void fork_prepare() noexcept {
    if constexpr (requires { shards_.fork_lock(); }) shards_.fork_lock();
    if constexpr (requires { buckets_.fork_lock(); }) buckets_.fork_lock();
    if constexpr (requires { pool_.fork_lock(); }) pool_.fork_lock();
    if constexpr (requires { fallback_.fork_lock(); }) fallback_.fork_lock();
    if constexpr (profiled) prof_.fork_lock();  // a leaf: a free under another lock may take it
  }
  void fork_release() noexcept {
    if constexpr (profiled) prof_.fork_unlock();
    if constexpr (requires { fallback_.fork_unlock(); }) fallback_.fork_unlock();
    if constexpr (requires { pool_.fork_unlock(); }) pool_.fork_unlock();
    if constexpr (requires { buckets_.fork_unlock(); }) buckets_.fork_unlock();
    if constexpr (requires { shards_.fork_unlock(); }) shards_.fork_unlock();
  }
  // In the child, before the locks go: the pool takes back the slabs that a
  // thread the child does not have was decommitting outside its lock.
  void fork_child() noexcept {
    if constexpr (requires { pool_.fork_child(); }) pool_.fork_child();
    fork_release();
  }
  // In the child, after the threads it does not have were given their exit:
  // what they held outside any binding (see ShardLayer::fork_settle).
  void fork_settle() noexcept {
    if constexpr (requires { shards_.fork_settle(); }) shards_.fork_settle();
  }

  // Live blocks and bytes across every layer that counts: what a destroyed
  // handle reports.
  static constexpr bool counts_live = LiveCounter<Fallback> || LiveCounter<Buckets> || LiveCounter<Shards>;

  template <class F = Fallback>
    requires(LiveCounter<F> || LiveCounter<Buckets> || LiveCounter<Shards>)
  LeakReport leaks() noexcept {
    LeakReport r;
    if constexpr (LiveCounter<Fallback>) r += fallback_.live();
    if constexpr (LiveCounter<Buckets>) r += buckets_.live();
    if constexpr (LiveCounter<Shards>) r += shards_.live();
    return r;
  }

  // ---- Stats -----------------------------------------------------------------
  template <class F = Fallback>
  Stats snapshot_stats() noexcept {
    static_assert(StatsSource<F> || StatsSource<Buckets> || StatsSource<Shards>,
                  "snapshot_stats() needs a layer that keeps stats: use Tracked<Heap> as the Fallback, or "
                  "MutexBuckets<Lock, BucketFeatures{.stats = true}>, or ThreadShards<ShardFeatures{.stats = true}>");
    Stats s;
    s.mode = Policy::name;
    s.classes.assign(Classes::sizes.begin(), Classes::sizes.end());
    if constexpr (StatsSource<Fallback>) fallback_.collect_stats(s);
    if constexpr (StatsSource<Buckets>) buckets_.collect_stats(s);
    if constexpr (StatsSource<Shards>) shards_.collect_stats(s);
    if constexpr (StatsSource<Buckets> && StatsSource<Shards>) {
      for (const BucketStats& b : s.buckets) s.shards.alloc_misses += b.allocations;
    }
    if constexpr (pooled) {
      s.has_memory = true;
      s.memory = pool_.stats();
    }
    return s;
  }

  // ---- Epochs ------------------------------------------------------------------
  // Empty optionals when no shard manager runs (allocator_shards = 0, or it
  // could not be created), exactly as in the seed. enter_epoch() is also
  // empty when this thread cannot take part (no memory for its epoch slot,
  // or the thread is exiting): an empty result always means "not pinned, do
  // not read shared structures that rely on the epoch". The handle's pin()
  // wraps both; its retire() defers a free.
  template <class S = Shards>
    requires(detail::layer_has_epochs<S>())
  std::optional<std::uint64_t> enter_epoch() noexcept {
    return shards_.enter_epoch();
  }
  template <class S = Shards>
    requires(detail::layer_has_epochs<S>())
  void leave_epoch(std::uint64_t observed) noexcept {
    shards_.leave_epoch(observed);
  }
  template <class S = Shards>
    requires(detail::layer_has_epochs<S>())
  std::optional<std::uint64_t> advance_epoch() noexcept {
    return shards_.advance_epoch();
  }

  // Reclaims what the epoch invariant allows: every retired block, and the
  // remote frees of the caller's own shard and of every unowned shard (a
  // shard another live thread owns takes its own at its next fill). Safe
  // from any thread. Returns the blocks made reusable.
  template <class S = Shards>
    requires(S::enabled)
  std::size_t collect_garbage() noexcept {
    const std::size_t n = shards_.collect();
    pool_.tick();
    return n;
  }

  // ---- Memory ------------------------------------------------------------------
  // Gives free memory back: the calling thread's shard and every unowned
  // shard, and every CPU's cache, return their free blocks to their slabs;
  // empty slabs beyond keep_bytes (default: the retain budget) are decommitted,
  // and chunks left with no slab in use and none retained are released
  // (address space too). Returns the bytes decommitted.
  template <class S = Shards>
    requires(pooled)
  std::size_t trim() noexcept {
    return trim(pool_.options().retain_bytes);
  }
  template <class S = Shards>
    requires(pooled)
  std::size_t trim(std::size_t keep_bytes) noexcept {
    if constexpr (Shards::enabled) shards_.drain();
    if constexpr (Buckets::enabled) buckets_.drain();
    const std::size_t freed = pool_.trim(keep_bytes);
    detail::idle_poll();  // then other pools' surplus that is due, while we are here
    return freed;
  }

  // ---- Heap profiles (a policy with `using Profiling = HeapProfiling;`) ----------
  // nullptr when the handle was built with profiling.enabled = false.
  template <class P = Profiler>
    requires(P::enabled)
  prof::HeapProfile* heap_profile() noexcept {
    return prof_.profile();
  }

  Fallback& fallback() noexcept { return fallback_; }
  Shards& shards() noexcept { return shards_; }
  Buckets& buckets() noexcept { return buckets_; }
  Pool& pool() noexcept { return pool_; }

 protected:
  // handle: whose blocks the slabs hold (a free checks it); not a pointer to
  // const, which GCC would take for a read of a handle not yet built
  // (-Wmaybe-uninitialized). hooks: the handle's own free, for the blocks the
  // shard layer reclaims. Joins the fork guard last, once every layer can
  // take its locks. Out of line (once per handle): inlined into its callers,
  // it left the pool's constructor out of line instead, where GCC takes the
  // pool's empty Options for an uninitialized read.
  SYDRA_OUT_OF_LINE HandleLayers(const Options& options, void* handle, ShardHooks hooks)
      : fallback_(options.fallback),
        pool_(handle, options.pool.slabs, options.regions),
        buckets_(pool_, options.pool),
        shards_(pool_, options.pool, fallback_.backing_allocator(), hooks),
        leak_report_(options.leak_report),
        print_leaks_(options.print_leaks),
        prof_(options.profiling) {
    if constexpr (has_fork_locks) detail::fork_register(this, &fork_hooks);
  }
  ~HandleLayers() = default;

  // First thing in the handle's destructor, with the key the guard was given
  // (this part's address), so that no fork meets a handle being torn down.
  void leave_fork_guard() noexcept {
    if constexpr (has_fork_locks) detail::fork_unregister(this);
  }

  // A destroyed handle's report, once its shard layer has shut down (retired
  // blocks freed, thread bindings dropped) and no block can come back.
  void report_leaks() noexcept {
    LeakReport r;
    if constexpr (counts_live) r = leaks();
    if (leak_report_ != nullptr) *leak_report_ = r;
    if (print_leaks_ && (r.blocks != 0 || r.underflow))
      std::fprintf(stderr, "sydra-alloc: leak: %llu blocks, %llu bytes still live when the %s handle was destroyed%s\n",
                   static_cast<unsigned long long>(r.blocks), static_cast<unsigned long long>(r.bytes), Policy::name,
                   r.underflow ? " (and more frees than allocations were counted: a double free?)" : "");
  }

  // An allocation failed: the caches this thread can reach give their blocks
  // back to their slabs (as trim() does), and every chunk with no slab in use
  // is released, address space and all, so that the retry, in the pool or
  // in the fallback, can map it again. False when there is nothing to give
  // back (no pooled layer): the caller does not retry.
  SYDRA_SLOW_PATH bool give_back_after_failure() noexcept {
    if constexpr (pooled) {
      if constexpr (Shards::enabled) shards_.drain();
      if constexpr (Buckets::enabled) buckets_.drain();
      pool_.give_back_for_retry();
      return true;
    } else {
      return false;
    }
  }

  [[no_unique_address]] Fallback fallback_;
  [[no_unique_address]] Pool pool_;
  [[no_unique_address]] Buckets buckets_;
  [[no_unique_address]] Shards shards_;
  LeakReport* leak_report_;
  bool print_leaks_;
  [[no_unique_address]] Profiler prof_;

 private:
  static constexpr detail::ForkHooks fork_hooks{
      [](void* h) noexcept { static_cast<HandleLayers*>(h)->fork_prepare(); },
      [](void* h) noexcept { static_cast<HandleLayers*>(h)->fork_release(); },
      [](void* h) noexcept { static_cast<HandleLayers*>(h)->fork_child(); },
      [](void* h) noexcept { static_cast<HandleLayers*>(h)->fork_settle(); }};
};

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
