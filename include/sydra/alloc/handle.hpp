// BasicAllocatorHandle<Policy>: routes each call to the layer that owns it.
// It holds no allocation logic of its own beyond the routing and the checks.
//
//   alloc:  shard (this thread's, no lock) -> bucket layer (this CPU's cache,
//           no lock; a lock per batch) -> fallback
//   free:   the Pagemap names the slab -> its shard or bucket; no slab -> the
//           fallback. The caller's length and alignment are a claim that
//           checked builds verify, never a route.
//
// Pooled means 1..max_size bytes (the policy's largest class) at an
// alignment of at most 16, malloc's. Optional members (stats, epochs,
// retire, trim) exist only when a layer provides them.
#pragma once

#include <sydra/alloc/concepts.hpp>
#include <sydra/alloc/detail/fork_guard.hpp>
#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/epoch/epoch_guard.hpp>
#include <sydra/alloc/prof/profiling.hpp>
#include <sydra/alloc/slab/idle_return.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <class UserPolicy>
class BasicAllocatorHandle : detail::PolicyRules<UserPolicy>,  // one readable error per broken rule
                             detail::TableRules<UserPolicy> {
  using Policy = detail::ValidPolicy<UserPolicy>;

 public:
  using PolicyType = UserPolicy;
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

  BasicAllocatorHandle() : BasicAllocatorHandle(Options{}) {}
  explicit BasicAllocatorHandle(const Options& options)
      : fallback_(options.fallback),
        pool_(this, options.pool.slabs, options.regions),
        buckets_(pool_, options.pool),
        shards_(pool_, options.pool, fallback_.backing_allocator(), ShardHooks{&free_thunk, this}),
        leak_report_(options.leak_report),
        print_leaks_(options.print_leaks),
        prof_(options.profiling) {
    if constexpr (has_fork_locks) detail::fork_register(this, &fork_hooks);
  }
  BasicAllocatorHandle(const BasicAllocatorHandle&) = delete;  // pools point back at the handle
  BasicAllocatorHandle& operator=(const BasicAllocatorHandle&) = delete;

  ~BasicAllocatorHandle() {
    if constexpr (has_fork_locks) detail::fork_unregister(this);
    if constexpr (Shards::enabled) shards_.shutdown();  // retired blocks freed, thread bindings dropped
    LeakReport r;
    if constexpr (counts_live) r = leaks();
    if (leak_report_ != nullptr) *leak_report_ = r;
    if (print_leaks_ && (r.blocks != 0 || r.underflow))
      std::fprintf(stderr, "sydra-alloc: leak: %llu blocks, %llu bytes still live when the %s handle was destroyed%s\n",
                   static_cast<unsigned long long>(r.blocks), static_cast<unsigned long long>(r.bytes), Policy::name,
                   r.underflow ? " (and more frees than allocations were counted: a double free?)" : "");
  }

  // ---- Allocation fast path ------------------------------------------------
  // The whole fast path of an allocation, and of a free, is below: no call is
  // made on it except, last of all, the tail call to the slow path.
  SYDRA_FAST_PATH void* alloc(std::size_t len, std::size_t align) noexcept {
    if constexpr (profiled) {  // the sampler's clock: one subtract, one branch
      if (SYDRA_UNLIKELY(prof::due(len))) return alloc_sampled(len, align);
    }
    if constexpr (pooled) {
      // Pooled: 1..max_size bytes (len 0 wraps around and fails the test) at an
      // alignment of 0, 1, 2, 4, 8 or 16 (the bits of 0x10117).
      if (SYDRA_LIKELY(len - 1 < Classes::max_size && align <= max_pooled_alignment && ((0x10117u >> align) & 1u))) {
        const unsigned cls = Classes::class_of(len, align);
        if constexpr (!Classes::serves_16_everywhere) {
          if (SYDRA_UNLIKELY(cls == Classes::count)) return alloc_fallback(len, align);  // no class serves 16 here
        }
        if constexpr (Shards::enabled) {
          const detail::ThreadEntry& e = shards_.entry();
          if (SYDRA_LIKELY(shards_.bound(e))) {
            if (void* p; shards_.pop(e.hot, cls, p)) return pooled_out(p);  // this thread's shard: no lock
            if (shards_.has_shard(e)) return alloc_slow(len, align, cls);  // fill its head from its slabs
          } else if (shards_.running()) {
            return alloc_slow(len, align, cls);  // this thread's first use: bind, take a shard if one is free
          }
        }
        if constexpr (Buckets::enabled) {
          if constexpr (Shards::enabled) return alloc_per_cpu(len, align, cls);  // no shard (see alloc_per_cpu)
          if (void* p = buckets_.alloc_fast(cls)) return pooled_out(p);  // this CPU's cache, no lock
        }
        return alloc_slow(len, align, cls);
      }
    }
    return alloc_fallback(len, align);  // too big, over-aligned, or not a valid request
  }

  SYDRA_FAST_PATH void free(void* mem, std::size_t len, std::size_t align) noexcept {
    if constexpr (pooled) {
      // The block's slab says everything: whose it is, its class, its owner.
      SlabMeta* m;
      if (SYDRA_UNLIKELY(!Pagemap::lookup_flat(mem, m))) return free_unmapped(mem, len, align);  // no flat table
      return free_in(m, mem, len, align);
    } else {
      free_fallback(mem, len, align);
    }
  }

 private:
  // mem's slab is m, or none (nullptr).
  SYDRA_FAST_PATH void free_in(SlabMeta* m, void* mem, std::size_t len, std::size_t align) noexcept {
    if (m == nullptr) return free_fallback(mem, len, align);  // no slab: the fallback's, whatever len says
    if constexpr (!checked) {
      // The class is the slab's, never the caller's length: a release build
      // checks what the lookup pays for (the start of a block here, this
      // handle's slab in free_block) and holds len only to "0 frees
      // nothing". Checked builds also hold len and align to the class
      // (check_claims).
      if (SYDRA_LIKELY(len != 0 && m->starts_block(mem))) return free_block(m, mem, len, align);
    }
    return free_pooled(m, mem, len, align);
  }

  // A free of the start of a block of slab m: its slab's free list (the
  // owner), this CPU's cache, or the slow route. A slab that this thread's
  // shard owns is this handle's (a handle's shards own only its slabs), so
  // the owner's free, the common one, never reads the slab's handle word.
  SYDRA_FAST_PATH void free_block(SlabMeta* m, void* mem, std::size_t len, std::size_t align) noexcept {
    const unsigned cls = m->size_class;
    if constexpr (Shards::enabled) {
      const detail::ThreadEntry& e = shards_.entry();
      if (SYDRA_LIKELY(shards_.bound(e) && m->owner == e.hot)) {
        if constexpr (hardened) mark_freed(mem);  // aborts if it already was
        if (shards_.push(e.hot, m, cls, mem)) return;  // onto its slab's free list
        return route_pooled(m, mem, len, align);       // the slab empties, or changes lists
      }
    }
    if (SYDRA_UNLIKELY(m->handle != this)) return free_pooled(m, mem, len, align);  // reports it
    if constexpr (hardened) mark_freed(mem);
    if constexpr (Buckets::enabled) {
      if constexpr (Shards::enabled) return free_per_cpu(m, mem, cls, len, align);  // see alloc_per_cpu
      if (m->kind == SlabKind::bucket) return buckets_.free_class(cls, mem);  // this CPU's cache
    }
    return route_pooled(m, mem, len, align);  // a remote or slow free
  }
  // ---- End of the fast path --------------------------------------------------

  // This CPU's cache, for a thread without a shard. Out of line when the
  // policy has shards: inlined, its registers would be saved on every shard
  // allocation and free too (a frame the shard path does not need).
  SYDRA_OUT_OF_LINE void* alloc_per_cpu(std::size_t len, std::size_t align, unsigned cls) noexcept {
    if constexpr (Buckets::enabled) {  // (an explicit instantiation makes every member)
      if (void* p = buckets_.alloc_fast(cls)) return pooled_out(p);  // no lock
    }
    return alloc_slow(len, align, cls);
  }
  SYDRA_OUT_OF_LINE void free_per_cpu(SlabMeta* m, void* mem, unsigned cls, std::size_t len,
                                      std::size_t align) noexcept {
    if constexpr (Buckets::enabled) {
      if (m->kind == SlabKind::bucket) return buckets_.free_class(cls, mem);  // no lock
    }
    return route_pooled(m, mem, len, align);  // a remote or slow free
  }

 public:
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if (mem == nullptr || len == 0 || !valid_request(new_len, align)) return false;
    if constexpr (pooled) {
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        check_block(m, mem, len, align, false);
        return same_class(m, new_len, align);
      }
    }
    if constexpr (profiled) {
      if (prof_.sampled(mem)) return false;  // its record keeps its size: moved by the caller instead
    }
    return fallback_.resize(mem, len, align, new_len);
  }

  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    align = normalize_align(align);
    if (mem == nullptr || len == 0 || !valid_request(new_len, align)) return nullptr;
    if constexpr (pooled) {
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        check_block(m, mem, len, align, false);
        if (same_class(m, new_len, align)) return mem;
        return move_block(mem, len, align, new_len);  // across classes, or out to the fallback
      }
      if (poolable(new_len, align)) return move_block(mem, len, align, new_len);  // into a pool
    }
    if constexpr (profiled) {
      if (prof_.sampled(mem)) return move_block(mem, len, align, new_len);  // a new sample or none
    }
    void* p = fallback_.remap(mem, len, align, new_len);
    if (SYDRA_UNLIKELY(p == nullptr) && give_back_after_failure()) p = fallback_.remap(mem, len, align, new_len);
    return p;
  }

  Allocator allocator() noexcept { return Allocator::of(*this); }

  // ---- For a malloc built on the handle (lib/malloc/) ---------------------------
  // C's free() and malloc_usable_size() do not know a block's length. A pooled
  // block needs none (its slab knows its class); a fallback block needs a
  // Fallback with usable_size() and free_unsized().
  template <class F = Fallback>
    requires requires(F& f, void* p) { f.free_unsized(p); }
  SYDRA_FAST_PATH void free_unsized(void* mem) noexcept {
    if constexpr (pooled) {
      SlabMeta* m;
      if (SYDRA_UNLIKELY(!Pagemap::lookup_flat(mem, m))) return free_unsized_unmapped(mem);  // no flat table
      return free_unsized_in(m, mem);
    } else {
      free_unsized_fallback(mem);
    }
  }

 private:
  template <class F = Fallback>
  SYDRA_FAST_PATH void free_unsized_in(SlabMeta* m, void* mem) noexcept {
    if (m == nullptr) return free_unsized_fallback(mem);
    if constexpr (!checked) {  // the slab names the class; the same checks as a sized free
      if (SYDRA_LIKELY(m->starts_block(mem))) return free_block(m, mem, m->block_size, 1);
    }
    return free_pooled(m, mem, m->block_size, 1);
  }
  template <class F = Fallback>
  SYDRA_OUT_OF_LINE void free_unsized_unmapped(void* mem) noexcept {
    free_unsized_in(Pagemap::lookup(mem), mem);
  }
  template <class F = Fallback>
  SYDRA_OUT_OF_LINE void free_unsized_fallback(void* mem) noexcept {
    if (mem == nullptr) return;
    if constexpr (profiled) prof_.forget(mem);
    fallback_.free_unsized(mem);
    detail::idle_poll();  // as free_fallback: due decommits and trims run where a call is already slow
  }

 public:
  // calloc(): a zero-filled block. Pooled blocks are cleared here; a
  // fallback that knows which of its pages are fresh from the kernel
  // (LibcHeap: glibc's calloc) clears only the others, which for a large
  // block is most of its cost.
  void* alloc_zeroed(std::size_t len, std::size_t align) noexcept {
    if constexpr (requires(Fallback& f) { f.alloc_zeroed(len, align); }) {
      if (!poolable(len, align)) {
        if constexpr (profiled) {
          if (SYDRA_UNLIKELY(prof::due(len))) {
            void* p = alloc_sampled(len, align);
            if (p != nullptr) std::memset(p, 0, len);
            return p;
          }
        }
        align = normalize_align(align);
        if (SYDRA_UNLIKELY(!valid_request(len, align))) return refuse_request(len, align);
        detail::idle_poll();
        void* p = fallback_.alloc_zeroed(len, align);
        if (SYDRA_UNLIKELY(p == nullptr) && give_back_after_failure()) p = fallback_.alloc_zeroed(len, align);
        return p;
      }
    }
    void* p = alloc(len, align);
    if (p != nullptr) std::memset(p, 0, len);
    return p;
  }
  template <class F = Fallback>
    requires requires(F& f, const void* p) { f.usable_size(p); }
  std::size_t usable_size(const void* mem) noexcept {
    if (mem == nullptr) return 0;
    if constexpr (pooled) {
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        check_block(m, const_cast<void*>(mem), m->block_size, 1, false);
        return m->block_size;
      }
    }
    return fallback_.usable_size(mem);
  }

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

  // realloc(): a remap that knows neither the block's length nor its
  // alignment (malloc's). Pooled blocks: the slab's class; fallback blocks:
  // a Fallback with remap_unsized(). nullptr leaves the block as it was.
  template <class F = Fallback>
    requires requires(F& f, void* p) { f.remap_unsized(p, std::size_t{}); }
  void* remap_unsized(void* mem, std::size_t new_len) noexcept {
    constexpr std::size_t align = max_pooled_alignment;
    if (!valid_request(new_len, align)) return nullptr;
    if constexpr (pooled) {
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        check_block(m, mem, m->block_size, 1, false);
        if (same_class(m, new_len, align)) return mem;
        return move_unsized(mem, m->block_size, new_len);  // across classes, or out to the fallback
      }
      if (poolable(new_len, align)) return move_unsized(mem, fallback_.usable_size(mem), new_len);  // into a pool
    }
    if constexpr (profiled) {
      if (prof_.sampled(mem)) return move_unsized(mem, fallback_.usable_size(mem), new_len);
    }
    return fallback_.remap_unsized(mem, new_len);
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

  // Optional members are templates over a defaulted parameter, so an explicit
  // instantiation of the handle (lib/modes.cpp) never instantiates one whose
  // layer lacks it.

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
  // not read shared structures that rely on the epoch". pin() wraps both.
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
  // A pin held for the guard's lifetime (epoch/epoch_guard.hpp); an empty
  // guard, whose why() says so, where the policy has no epochs.
  EpochGuard<BasicAllocatorHandle> pin() noexcept {
    return EpochGuard<BasicAllocatorHandle>(*this);
  }

  // Frees the block once no thread pinned at or before now is still pinned.
  // Until then the block is neither written nor poisoned: pinned readers may
  // still follow pointers stored anywhere in it. False only when no retire bag
  // could be allocated: the block is then untouched and still the caller's.
  template <class S = Shards>
    requires(detail::layer_has_epochs<S>())
  bool retire(void* mem, std::size_t len, std::size_t align) noexcept {
    if (mem == nullptr || len == 0) return true;
    align = normalize_align(align);
    if (!shards_.running()) {  // nobody can be pinned: nothing to wait for
      free(mem, len, align);
      return true;
    }
    if constexpr (checked || hardened) {  // diagnose a bad pointer now; the live bit clears at the real free
      if (SlabMeta* m = Pagemap::lookup(mem)) {
        check_block(m, mem, len, align, false);
        if constexpr (hardened) check_not_freed(mem);
      }
    }
    return shards_.retire(mem, len, align);
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

 private:
  static void free_thunk(void* self, void* mem, std::size_t len, std::size_t align) noexcept {
    static_cast<BasicAllocatorHandle*>(self)->free(mem, len, align);
  }
  static constexpr detail::ForkHooks fork_hooks{
      [](void* h) noexcept { static_cast<BasicAllocatorHandle*>(h)->fork_prepare(); },
      [](void* h) noexcept { static_cast<BasicAllocatorHandle*>(h)->fork_release(); },
      [](void* h) noexcept { static_cast<BasicAllocatorHandle*>(h)->fork_child(); },
      [](void* h) noexcept { static_cast<BasicAllocatorHandle*>(h)->fork_settle(); }};

  static constexpr bool poolable(std::size_t len, std::size_t align) noexcept {
    return len <= Classes::max_size && align <= max_pooled_alignment &&
           Classes::class_of(len, align) < Classes::count;
  }

  // Everything the pooled fast path does not do: binding a shard or filling
  // its head, the bucket layer for a thread without a shard, and the
  // fallback when the pools are out of memory (or no class serves the
  // alignment). If all of it fails, what is empty goes back and it is tried
  // once more.
  SYDRA_SLOW_PATH void* alloc_slow(std::size_t len, std::size_t align, unsigned cls) noexcept {
    if (void* p = alloc_slow_once(len, align, cls)) return p;
    if (!give_back_after_failure()) return nullptr;
    return alloc_slow_once(len, align, cls);
  }
  void* alloc_slow_once(std::size_t len, std::size_t align, unsigned cls) noexcept {
    if (cls < Classes::count) {
      if constexpr (Shards::enabled) {
        if (void* p = shards_.alloc(cls)) return pooled_out(p);
      }
      if constexpr (Buckets::enabled) {
        if (void* p = buckets_.alloc(cls)) return pooled_out(p);
      }
    }
    return alloc_fallback_once(len, align);
  }

  SYDRA_OUT_OF_LINE void* alloc_fallback(std::size_t len, std::size_t align) noexcept {
    if (void* p = alloc_fallback_once(len, align)) return p;
    if (!valid_request(len, normalize_align(align)) || !give_back_after_failure()) return nullptr;
    return alloc_fallback_once(len, align);
  }
  void* alloc_fallback_once(std::size_t len, std::size_t align) noexcept {
    align = normalize_align(align);
    if (SYDRA_UNLIKELY(!valid_request(len, align))) return refuse_request(len, align);
    detail::idle_poll();  // a call into a handle: other pools' due decommits run here, off the fast paths
    return fallback_.alloc(len, align);
  }

  // free() in a process with no flat pagemap (yet): the radix table's lookup.
  SYDRA_OUT_OF_LINE void free_unmapped(void* mem, std::size_t len, std::size_t align) noexcept {
    free_in(Pagemap::lookup(mem), mem, len, align);
  }
  SYDRA_OUT_OF_LINE void free_fallback(void* mem, std::size_t len, std::size_t align) noexcept {
    if (mem == nullptr || len == 0) return;
    if constexpr (profiled) prof_.forget(mem);
    fallback_.free(mem, len, normalize_align(align));
    detail::idle_poll();
  }

  // The sampler's clock ran out. A sampled block comes from the fallback, so
  // that a pooled free never needs to ask whether its block was sampled; an
  // allocation the slow path does not sample takes the ordinary route (its
  // bytes are given back to the clock, which alloc() counts again).
  template <class P = Profiler>  // a template: an explicit instantiation without a profiler skips it
    requires(P::enabled)
  SYDRA_SLOW_PATH void* alloc_sampled(std::size_t len, std::size_t align) noexcept {
    const prof::Decision d = prof_.decide(len);
    if (!d.sample) {
      prof::give_back(len);
      return alloc(len, align);
    }
    void* p = alloc_fallback(len, align);
    if (p != nullptr) {
      const unsigned cls = pooled && poolable(len, align) ? Classes::class_of(len, align) : Classes::count;
      prof_.record(p, len, normalize_align(align), cls, d.weight,
                   reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)));
    }
    return p;
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
  // Hardened policies: a freed pooled block carries a canary in its second
  // word (the per-process secret mixed with its address), written by the free
  // and cleared when the block is handed out again. A free that finds its
  // canary already there is a double free, wherever the block waits: every
  // free list links through the first word only (see Links), so the canary
  // stays until the block is handed out.
  static std::uint64_t canary(const void* p) noexcept {
    return pal::process_secret() ^ reinterpret_cast<std::uintptr_t>(p) ^ 0xF4EEDB10CCull;
  }
  static volatile std::uint64_t* canary_word(void* p) noexcept { return static_cast<volatile std::uint64_t*>(p) + 1; }
  SYDRA_NO_ASAN static void mark_freed(void* p) noexcept {
    track::link_access_begin(p, sizeof(FreeNode));
    volatile std::uint64_t* word = canary_word(p);
    const bool again = *word == canary(p);
    if (!again) *word = canary(p);
    track::link_access_end(p, sizeof(FreeNode));
    if (again) misuse(Misuse::double_free, "pooled block freed twice (hardened policy)", p, 0, 0);
  }
  SYDRA_NO_ASAN static void check_not_freed(void* p) noexcept {  // retire(): read, never write
    track::link_access_begin(p, sizeof(FreeNode));
    const bool again = *canary_word(p) == canary(p);
    track::link_access_end(p, sizeof(FreeNode));
    if (again) misuse(Misuse::double_free, "retire of a freed pooled block (hardened policy)", p, 0, 0);
  }

  // Checked builds mark each pooled block live, so a second free is caught;
  // hardened policies clear the freed-block canary.
  SYDRA_FAST_PATH void* pooled_out(void* p) noexcept {
    if constexpr (hardened) static_cast<std::uint64_t*>(p)[1] = 0;
#if SYDRA_ALLOC_CHECKED
    SlabMeta* m = Pagemap::lookup(p);
    m->mark_live(static_cast<std::size_t>(static_cast<char*>(p) - m->base) / m->block_size, true);
#endif
    return p;
  }

  SYDRA_SLOW_PATH void free_pooled(SlabMeta* m, void* mem, std::size_t len, std::size_t align) noexcept {
    if (len == 0) return;
    check_block(m, mem, len, align, true);
    if constexpr (hardened) mark_freed(mem);
    route_pooled(m, mem, len, align);
  }
  SYDRA_SLOW_PATH void route_pooled(SlabMeta* m, void* mem, std::size_t len, std::size_t align) noexcept {
    if constexpr (Shards::enabled) {
      if (m->kind == SlabKind::shard) return shards_.free(m, mem);
    }
    if constexpr (Buckets::enabled) {
      if (m->kind == SlabKind::bucket) return buckets_.free(m, mem);
    }
    misuse(Misuse::double_free, "pointer into a slab that holds no blocks (double free, or a stale pointer)", mem,
           len, align);
  }

  // What every build checks, because the lookup the free already made pays
  // for it: the block is this handle's, and starts a block. Checked builds
  // also hold the caller's length and alignment to the block's class, and the
  // block's live bit to catch a double free.
  SYDRA_FAST_PATH void check_block(SlabMeta* m, void* mem, std::size_t len, std::size_t align,
                                   bool freeing) noexcept {
    if (SYDRA_UNLIKELY(m->handle != this))
      misuse(Misuse::foreign_pointer, "block belongs to another handle", mem, len, align);
    const std::size_t off = static_cast<std::size_t>(static_cast<char*>(mem) - m->base);
    if (SYDRA_UNLIKELY(m->kind == SlabKind::empty))
      misuse(Misuse::double_free, "pointer into a slab that holds no blocks (double free, or a stale pointer)", mem,
             len, align);
    if (SYDRA_UNLIKELY(!m->starts_block(mem)))
      misuse(Misuse::interior_pointer, "pointer is not the start of a pooled block", mem, len, align);
    if constexpr (checked) check_claims(m, off, mem, len, align, freeing);
  }

  SYDRA_SLOW_PATH void check_claims(SlabMeta* m, std::size_t off, void* mem, std::size_t len, std::size_t align,
                                    bool freeing) noexcept {
    align = normalize_align(align);
    if (align > max_pooled_alignment)
      misuse(Misuse::alignment_mismatch, "over-aligned free of a pooled block (wrong path)", mem, len, align);
    if (len > Classes::max_size || Classes::class_of(len, align) != m->size_class)
      misuse(Misuse::size_mismatch, "length or alignment does not match the pooled block's size class", mem, len,
             align);
#if SYDRA_ALLOC_CHECKED
    const std::size_t idx = off / m->block_size;
    const bool was_live = freeing ? m->mark_live(idx, false) : m->is_live(idx);
    if (!was_live) misuse(Misuse::double_free, "pooled block is not live (double free)", mem, len, align);
#else
    (void)off;
    (void)freeing;
#endif
  }

  [[noreturn]] SYDRA_SLOW_PATH static void misuse(Misuse kind, const char* what, const void* mem, std::size_t len,
                                                  std::size_t align) noexcept {
    report_misuse(kind, what, mem, len, align);
  }

  static bool same_class(const SlabMeta* m, std::size_t new_len, std::size_t align) noexcept {
    return poolable(new_len, align) && Classes::class_of(new_len, align) == m->size_class;
  }

  void* move_block(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    void* p = alloc(new_len, align);
    if (p == nullptr) return nullptr;  // the old block stays valid
    std::memcpy(p, mem, std::min(len, new_len));
    free(mem, len, align);
    return p;
  }

  template <class F = Fallback>  // a template, as remap_unsized(): only for a Fallback with free_unsized()
  void* move_unsized(void* mem, std::size_t usable, std::size_t new_len) noexcept {
    void* p = alloc(new_len, max_pooled_alignment);
    if (p == nullptr) return nullptr;  // the old block stays valid
    std::memcpy(p, mem, std::min(usable, new_len));
    free_unsized(mem);
    return p;
  }

  [[no_unique_address]] Fallback fallback_;
  [[no_unique_address]] Pool pool_;
  [[no_unique_address]] Buckets buckets_;
  [[no_unique_address]] Shards shards_;
  LeakReport* leak_report_;
  bool print_leaks_;
  [[no_unique_address]] Profiler prof_;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
