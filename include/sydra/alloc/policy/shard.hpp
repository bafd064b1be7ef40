// ShardPolicy implementations: per-thread slab shards, deferred cross-thread
// frees and epochs (the seed's ShardManager, made correct and made fast).
//
// NoShards: no shards and no epochs.
// ThreadShards<ShardFeatures{.count, .epochs, .stats}>: `count` shards. A
// thread takes one on its first small allocation (an atomic counter picks
// where to start looking; a compare-exchange on the shard's owner makes the
// thread its only owner) and holds it until it exits. A thread that finds none
// free is a miss and uses the bucket layer.
//
// ShardLayer composes the shard layer's parts (shard/):
//   owner_slabs.hpp  a shard's state, and its owner's slabs: per class, the
//                    head the fast path pops (the current slab's blocks) and
//                    the slabs with their own free lists
//   remote_free.hpp  other threads' frees: onto the block's slab's
//                    thread_free, and news of it to the owner
//   counts.hpp       snapshot counting: stats rows and the leak report
//   epochs.hpp       enter/leave/advance, retire and the retire bags
// and owns what ties them together: which thread holds which shard (each
// thread's binding), the sending side of remote frees (per-slab batches in
// the owner's cache/remote_cache.hpp), and the order of the slow paths.
#pragma once

#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/heap/audited.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/shard/counts.hpp>
#include <sydra/alloc/shard/epochs.hpp>
#include <sydra/alloc/shard/owner_slabs.hpp>
#include <sydra/alloc/shard/remote_free.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct ShardFeatures {
  std::size_t count = 4;  // shards; Options::pool.shards overrides it for one handle
  bool epochs = true;     // enter/leave/advance_epoch, retire, collect_garbage; remote frees wait out pinned readers
  bool stats = true;      // per-shard, per-class counters in snapshot_stats() and the leak report
};

// What a shard layer hands the handle besides blocks: where retired blocks go.
struct ShardHooks {
  RetireBags::FreeFn free_fn = nullptr;  // the handle's free, for reclaimed retired blocks
  void* ctx = nullptr;
};

struct NoShards {
  static constexpr bool enabled = false;
  template <class Ctx>
  struct Layer {
    static constexpr bool enabled = false;
    constexpr Layer(typename Ctx::Pool&, const PoolOptions&, Allocator, ShardHooks) noexcept {}
  };
};

template <class Ctx, ShardFeatures Features>
class ShardLayer final : public detail::ThreadHost {
 public:
  static constexpr bool enabled = true;
  static constexpr bool has_epochs = Features.epochs;
  static constexpr bool keeps_stats = Features.stats;
  using Classes = typename Ctx::Classes;
  using Pool = typename Ctx::Pool;
  using Shard = sydra::alloc::Shard<Ctx, Features.stats>;
  using Remote = typename Shard::Remote;
  using Counts = ShardCounts<Shard>;
  static constexpr std::size_t binding_bytes = 32;  // a thread's binding, from the backing heap (checked below)

  ShardLayer(Pool& pool, const PoolOptions& options, Allocator backing, ShardHooks hooks) noexcept
      : pool_(pool),
        backing_(backing),
        remote_batch_(std::max<std::uint32_t>(options.shard_cache.remote_batch, 1)),
        epochs_(backing, hooks.free_fn, hooks.ctx) {
    const std::size_t n = options.shards == PoolOptions::policy_shards ? Features.count : options.shards;
    if (n == 0) return;  // seed: allocator_shards = 0 -> no manager
    void* mem = backing.alloc(n * sizeof(Shard), alignof(Shard));
    if (mem == nullptr) return;  // seed: a manager that cannot be created -> no shards
    shards_ = static_cast<Shard*>(mem);
    for (std::size_t i = 0; i < n; ++i) {
      Shard* s = ::new (&shards_[i]) Shard(static_cast<std::uint32_t>(i));
      s->carve_bytes = static_cast<std::uint32_t>(std::clamp<std::size_t>(options.shard_cache.carve_bytes, 1, slab_bytes));
    }
    id_ = detail::register_host(this);
    slot_ = static_cast<std::uint32_t>(id_ % detail::ThreadCache::ways);
    entry_offset_ = slot_ * sizeof(detail::ThreadEntry);
    if (id_ == 0) {  // no room in the thread registry: no manager, as when the array cannot be made
      for (std::size_t i = 0; i < n; ++i) shards_[i].~Shard();
      backing.free(shards_, n * sizeof(Shard), alignof(Shard));
      shards_ = nullptr;
      return;
    }
    count_ = n;
    entry_id_ = id_;
    available_.store(n, std::memory_order_relaxed);
  }
  ShardLayer(const ShardLayer&) = delete;
  ShardLayer& operator=(const ShardLayer&) = delete;
  ~ShardLayer() {
    shutdown();
    if (shards_ == nullptr) return;
    for (std::size_t i = 0; i < count_; ++i) shards_[i].~Shard();
    backing_.free(shards_, count_ * sizeof(Shard), alignof(Shard));
  }

  // Before the handle counts its leaks: every thread's binding is dropped
  // (its remote batches published, its heads emptied, its retire bag
  // sealed), then every retired block is freed, pinned readers or not:
  // nothing may outlive the handle. From the first step on, this layer hands
  // out no binding, so the frees that reclaiming makes take the paths that
  // need none.
  void shutdown() noexcept {
    if (down_) return;
    down_ = true;
    if constexpr (Features.epochs) epochs_.report_pinned_at_shutdown();
    detail::unregister_host(
        id_, [](void* self, void* state) { static_cast<ShardLayer*>(self)->drop(static_cast<Binding*>(state)); },
        this);
    if constexpr (Features.epochs) epochs_.reclaim_all();  // no lock held: the handle's free may run
    for (std::size_t i = 0; i < count_; ++i) reclaim_shard(shards_[i], /*everything=*/true);
  }

  bool running() const noexcept { return count_ != 0; }
  std::size_t shard_count() const noexcept { return count_; }

  // fork(): the spare retire bags' lock; shards and remote frees take none.
  void fork_lock() noexcept {
    if constexpr (Features.epochs) epochs_.fork_lock();
  }
  void fork_unlock() noexcept {
    if constexpr (Features.epochs) epochs_.fork_unlock();
  }
  // In a fork's child, once the departed threads' bindings are given back
  // (detail/fork_guard.hpp): a shard still owned by a thread other than this
  // one was held outside any binding at the fork (trim()'s drain empties
  // unowned shards under a borrowed ownership; a thread taking a shard owns
  // it before its binding says so). No one would ever release it: emptied
  // and released here, and the count of free shards recomputed, since the
  // fork may also have fallen between a take and its count.
  void fork_settle() noexcept {
    if (!running()) return;
    const std::uint64_t me = detail::thread_token();
    std::size_t free_shards = 0;
    for (std::size_t i = 0; i < count_; ++i) {
      Shard& s = shards_[i];
      const std::uint64_t owner = s.owner_thread.load(std::memory_order_acquire);
      if (owner != 0 && owner != me && owner != Shard::abandoned_owner) {
        if (s.caught_busy()) {
          s.owner_thread.store(Shard::abandoned_owner, std::memory_order_release);
          continue;
        }
        empty_shard(s);
        s.owner_thread.store(0, std::memory_order_release);
      }
      if (s.owner_thread.load(std::memory_order_relaxed) == 0) ++free_shards;
    }
    available_.store(free_shards, std::memory_order_relaxed);
  }

  // ---- The fast path -----------------------------------------------------------
  // The handle reads this thread's entry once (entry(), bound()), then pops
  // from its shard's head (pop(); the shard's half is Shard::pop and
  // Shard::push, shard/owner_slabs.hpp). No call on the way: an empty head
  // returns nullptr and the handle's slow path fills it.
  SYDRA_FAST_PATH const detail::ThreadEntry& entry() const noexcept {
    return *reinterpret_cast<const detail::ThreadEntry*>(
        reinterpret_cast<const char*>(&detail::thread_cache.entries[0]) + entry_offset_);
  }
  // The entry is this layer's: the thread is bound (entry.hot is its shard,
  // or no_shard_ for a thread that found none free).
  SYDRA_FAST_PATH bool bound(const detail::ThreadEntry& e) const noexcept { return e.id == entry_id_; }
  // Of a bound entry: the thread holds a shard. Asked only after a pop
  // failed: a pop from no_shard_ always fails.
  SYDRA_FAST_PATH static bool has_shard(const detail::ThreadEntry& e) noexcept { return e.hot != &no_shard_; }

  // False when the head is empty (out is then untouched).
  SYDRA_FAST_PATH bool pop(void* shard, unsigned cls, void*& out) noexcept {
    return static_cast<Shard*>(shard)->pop(cls, out);
  }

  SYDRA_FAST_PATH void* alloc_fast(unsigned cls) noexcept {
    const detail::ThreadEntry& e = entry();
    void* p = nullptr;
    if (SYDRA_UNLIKELY(!bound(e))) return nullptr;
    pop(e.hot, cls, p);
    return p;
  }

  // The owner's free of its own block, onto its slab's free list. False
  // (nothing done) for anything else.
  SYDRA_FAST_PATH bool free_fast(SlabMeta* slab, void* p) noexcept {
    const detail::ThreadEntry& e = entry();
    if (SYDRA_UNLIKELY(!bound(e) || e.hot != slab->owner)) return false;
    return push(e.hot, slab, slab->size_class, p);
  }
  // The handle's free fast path: `shard` is this thread's (from its entry)
  // and owns slab m; `cls` the class the handle checked against the slab.
  SYDRA_FAST_PATH bool push(void* shard, SlabMeta* m, unsigned cls, void* p) noexcept {
    return static_cast<Shard*>(shard)->push(m, cls, p);
  }
  // ---- End of the fast path ----------------------------------------------------

  // The whole of an allocation: the fast path, then binding a shard, filling
  // the head. nullptr: no shard for this thread, or out of memory.
  SYDRA_SLOW_PATH void* alloc(unsigned cls) noexcept {
    if (void* p = alloc_fast(cls)) return p;
    const detail::ThreadEntry& e = entry();
    auto* s = static_cast<Shard*>(e.hot);
    if (!bound(e) || s == &no_shard_) return alloc_unbound(cls, bound(e));
    return alloc_refill(*s, cls);
  }

  // The whole of a free of one of this layer's blocks: onto its slab's free
  // list (the owner), or its thread_free (anyone else, batched per slab).
  SYDRA_SLOW_PATH void free(SlabMeta* slab, void* p) noexcept {
    if (free_fast(slab, p)) return;
    free_slow(*static_cast<Shard*>(slab->owner), slab, p);
  }

  // ---- Epochs --------------------------------------------------------------------
  std::optional<std::uint64_t> enter_epoch() noexcept
    requires(Features.epochs)
  {
    return epochs_.enter(local_slot());
  }
  void leave_epoch(std::uint64_t observed) noexcept
    requires(Features.epochs)
  {
    epochs_.leave(local_slot(), observed);
  }
  std::optional<std::uint64_t> advance_epoch() noexcept
    requires(Features.epochs)
  {
    if (!running()) return std::nullopt;
    return epochs_.advance();
  }
  std::uint64_t current_epoch() const noexcept
    requires(Features.epochs)
  {
    return epochs_.current();
  }

  // Defers a free until no reader pinned at or before now is still pinned.
  // False only when no retire bag could be allocated: the block is untouched.
  bool retire(void* mem, std::size_t len, std::size_t align) noexcept
    requires(Features.epochs)
  {
    Binding* b = binding();
    if (b == nullptr) return false;
    if (!epochs_.retire(b->bag, mem, len, align)) return false;
    b->retired.bump();
    return true;
  }

  // Reclaims what the epoch invariant allows: the caller's open retire bag is
  // sealed, the epoch advanced once, sealed bags freed, the caller's own
  // batches published, and the remote frees that no reader can see taken
  // back into their slabs: the caller's shard's, and every unowned shard's.
  // A shard another thread owns takes its own at its next fill. Safe from
  // any thread. Returns the blocks made reusable.
  std::size_t collect() noexcept {
    if (!running()) return 0;
    std::size_t n = 0;
    Binding* b = binding();
    if constexpr (Features.epochs) n += epochs_.collect(b != nullptr ? &b->bag : nullptr);
    // After the reclaiming above, whose frees may have joined this thread's
    // own batches: published now, taken back just below.
    if (b != nullptr && b->shard != nullptr) {
      typename Shard::BusyScope busy(*b->shard);
      publish_all(*b->shard);
      n += reclaim_shard(*b->shard, false);
    }
    for (std::size_t i = 0; i < count_; ++i)
      with_unowned(shards_[i], [&](Shard& s) { n += reclaim_shard(s, false); });
    return n;
  }

  // For trim(): the caller's shard, and every shard no thread owns, give
  // their free blocks back to their slabs, so that empty slabs reach the pool.
  void drain() noexcept {
    if (!running()) return;
    if (Binding* b = binding(); b != nullptr && b->shard != nullptr) empty_shard(*b->shard);
    for (std::size_t i = 0; i < count_; ++i) with_unowned(shards_[i], [this](Shard& s) { empty_shard(s); });
  }

  void collect_stats(Stats& out) noexcept
    requires(Features.stats)
  {
    out.has_shards = running();
    out.has_epochs = running() && Features.epochs;
    ShardSummary& sum = out.shards;
    sum.shard_count = count_;
    if constexpr (Features.epochs) {
      if (!running()) return;  // no manager: the epoch fields stay zero, as has_epochs says
      epochs_.summarize(sum, [this] { return retired_total(); });
    }
    Counts{shards_, count_}.summarize(sum);
  }

  LeakReport live() noexcept
    requires(Features.stats)
  {
    LeakReport r;
    Counts{shards_, count_}.per_class([&r](unsigned c, std::uint64_t allocated, std::uint64_t returned) {
      r += LeakReport::difference(allocated, returned, allocated * Classes::sizes[c], returned * Classes::sizes[c]);
    });
    return r;
  }

 private:
  struct Binding {
    Shard* shard = nullptr;
    EpochDomain::Slot* slot = nullptr;
    RetireBags::Bag* bag = nullptr;
    Counter<> retired;
  };
  static_assert(sizeof(Binding) == binding_bytes);

  Binding* binding() noexcept {
    if (down_) return nullptr;
    detail::ThreadEntry* e = detail::thread_entry(id_, this);
    return e != nullptr ? static_cast<Binding*>(e->state) : nullptr;
  }

  // ---- thread bindings -----------------------------------------------------------
  void* make_thread_state() noexcept override {
    void* mem = backing_.alloc(sizeof(Binding), alignof(Binding));
    return mem != nullptr ? ::new (mem) Binding{} : nullptr;
  }
  void* hot_of(void* state) noexcept override { return hot(static_cast<Binding*>(state)->shard); }
  static Shard* hot(Shard* s) noexcept { return s != nullptr ? s : &no_shard_; }
  void on_thread_exit(void* state) noexcept override { drop(static_cast<Binding*>(state)); }

  // A thread leaves (exit, or the layer's shutdown): its shard's heads go
  // back to their slabs and the shard is released with its slabs and their
  // remote frees intact, its epoch slot released, its retire bag sealed.
  //
  // In a fork's child the thread may have been anywhere in its own slow path
  // when the fork caught it: a shard caught busy is abandoned, never emptied
  // (Shard::busy), and is never handed out again.
  void drop(Binding* b) noexcept {
    if (b->shard != nullptr && b->shard->caught_busy()) {
      b->shard->owner_thread.store(Shard::abandoned_owner, std::memory_order_release);
    } else if (b->shard != nullptr) {
      empty_shard(*b->shard);
      b->shard->owner_thread.store(0, std::memory_order_release);
      available_.fetch_add(1, std::memory_order_relaxed);
    }
    if constexpr (Features.epochs) {
      epochs_.release(b->slot, b->bag);
      departed_retired_.fetch_add(b->retired.get(), std::memory_order_acq_rel);
    }
    b->~Binding();
    backing_.free(b, sizeof(Binding), alignof(Binding));
  }

  // No shard in this thread's entry: bind, and take a shard if one is free.
  SYDRA_SLOW_PATH void* alloc_unbound(unsigned cls, bool bound) noexcept {
    if (!running() || down_ || (bound && available_.load(std::memory_order_relaxed) == 0)) return nullptr;
    detail::ThreadEntry* e = detail::thread_entry(id_, this);
    if (e == nullptr) return nullptr;
    auto* b = static_cast<Binding*>(e->state);
    if (b->shard == nullptr) {
      b->shard = try_take_shard();
      e->hot = hot(b->shard);
      if (b->shard == nullptr) return nullptr;
    }
    return alloc(cls);
  }

  Shard* try_take_shard() noexcept {
    if (available_.load(std::memory_order_relaxed) == 0) return nullptr;
    const std::uint64_t me = detail::thread_token();
    const std::size_t start = next_.fetch_add(1, std::memory_order_relaxed) % count_;
    for (std::size_t i = 0; i < count_; ++i) {
      Shard& s = shards_[(start + i) % count_];
      std::uint64_t expected = 0;
      if (s.owner_thread.load(std::memory_order_relaxed) == 0 &&
          s.owner_thread.compare_exchange_strong(expected, me, std::memory_order_acquire)) {
        available_.fetch_sub(1, std::memory_order_relaxed);
        return &s;
      }
    }
    return nullptr;
  }

  EpochDomain::Slot* local_slot() noexcept
    requires(Features.epochs)
  {
    if (!running()) return nullptr;
    Binding* b = binding();
    if (b == nullptr) return nullptr;
    return epochs_.slot(b->slot);
  }

  // ---- the owner's slow paths ----------------------------------------------------
  // The head ran dry: this thread's own remote batches go out first (they may
  // be blocks its own news is waiting for elsewhere), then the shard fills
  // the head from its slabs.
  SYDRA_SLOW_PATH void* alloc_refill(Shard& s, unsigned cls) noexcept {
    pool_.tick();  // no lock held here: the retention policy's decommits may run
    typename Shard::BusyScope busy(s);
    publish_all(s);
    return s.refill(pool_, cls, safe_below(false));
  }

  // Not the owner's fast case: the slab empties or changes lists, or the
  // block belongs to another shard, or this thread's entry was evicted by
  // another handle.
  SYDRA_SLOW_PATH void free_slow(Shard& owner, SlabMeta* m, void* p) noexcept {
    const unsigned cls = m->size_class;
    Binding* b = binding();
    Shard* mine = b != nullptr ? b->shard : nullptr;
    if (mine == &owner) {
      typename Shard::BusyScope busy(owner);
      owner.free_own(pool_, m, cls, p);
      return;
    }
    track::on_take_back(p, Classes::sizes[cls]);
    if (mine != nullptr) {  // batched with this thread's other frees to that slab
      typename Shard::BusyScope busy(*mine);
      mine->remote_out[cls].bump();  // before the add: a publish may follow at once
      mine->remote.add(m, p, remote_batch_, [this, mine](typename Remote::Batch& batch) { publish(*mine, batch); });
      return;
    }
    // No shard here: one block, published at once.
    auto* f = static_cast<FreeNode*>(p);
    publish_chain(m, f, f, 1);
  }

  // Everything the shard's heads hold goes back to their slabs, its own
  // batches are published, and the news is read (empty slabs go back to the
  // pool).
  void empty_shard(Shard& s) noexcept {
    typename Shard::BusyScope busy(s);
    publish_all(s);
    for (unsigned c = 0; c < Classes::count; ++c) s.empty(pool_, c, safe_below(false));
  }

  // Runs f(s) holding an unowned shard as its owner would (no thread may take
  // it meanwhile); nothing if some thread owns it.
  template <class F>
  void with_unowned(Shard& s, F&& f) noexcept {
    std::uint64_t expected = 0;
    if (s.owner_thread.load(std::memory_order_relaxed) != 0 ||
        !s.owner_thread.compare_exchange_strong(expected, detail::thread_token(), std::memory_order_acquire))
      return;
    f(s);
    s.owner_thread.store(0, std::memory_order_release);
  }

  // ---- remote frees: sending, and taking back -------------------------------------
  void publish_all(Shard& s) noexcept {
    s.remote.flush([this, &s](typename Remote::Batch& batch) { publish(s, batch); });
  }
  void publish(Shard& from, typename Remote::Batch& batch) noexcept {
    from.published[batch.slab->size_class].bump(batch.count);  // before the destination counts it: see ShardCounts::read()
    publish_chain(batch.slab, batch.head, batch.tail, batch.count);
  }
  void publish_chain(SlabMeta* m, FreeNode* head, FreeNode* tail, std::uint32_t count) noexcept {
    Shard& dest = *static_cast<Shard*>(m->owner);
    std::uint64_t stamp = 0;
    if constexpr (Features.epochs) stamp = epochs_.stamp();  // read after the blocks were freed
    Shard::Frees::publish(dest.in[m->size_class], m, head, tail, count, stamp);
  }

  // `everything` when the handle is going away: pinned readers or not.
  auto safe_below(bool everything) noexcept {
    return [this, everything] { return epochs_.safe_below(everything); };
  }
  std::size_t reclaim_shard(Shard& s, bool everything) noexcept {
    std::size_t n = 0;
    for (unsigned c = 0; c < Classes::count; ++c) n += s.reclaim(pool_, c, safe_below(everything));
    return n;
  }

  std::uint64_t retired_total() const noexcept {
    struct Sum {
      const ShardLayer* self;
      std::uint64_t n;
    } sum{this, 0};
    detail::for_each_thread_state(
        id_, 1, [](void* c, unsigned, void* state) { static_cast<Sum*>(c)->n += static_cast<Binding*>(state)->retired.get(); },
        &sum,
        [](void* c, unsigned) {  // under the same lock as the bindings: an exit moves its count here
          auto* x = static_cast<Sum*>(c);
          x->n = x->self->departed_retired_.load(std::memory_order_acquire);
        });
    return sum.n;
  }

  Pool& pool_;
  Allocator backing_;
  Shard* shards_ = nullptr;
  std::size_t count_ = 0;
  std::uint64_t id_ = 0;  // 0 never matches an entry: no manager
  std::uint32_t slot_ = 0;  // id_'s entry in the thread cache
  std::size_t entry_offset_ = 0;  // and its offset in the cache's entries
  // What bound() compares an entry's id with: id_ once the layer runs, and
  // before (or with no manager) an id no entry has, not even an empty one.
  std::uint64_t entry_id_ = ~std::uint64_t{0};
  // What a bound thread without a shard finds in its entry: a shard whose
  // heads are always empty and that owns no slab, so that the fast paths
  // need no null test (a pop from it fails, no free matches it). Never
  // written; constant-initialized, as the malloc library may use a handle
  // before any constructor has run.
  static constinit inline Shard no_shard_{0};
  bool down_ = false;
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> available_{0};
  std::atomic<std::uint64_t> departed_retired_{0};
  std::uint32_t remote_batch_;  // remote frees per slab batched before they are published
  [[no_unique_address]] ShardEpochs<Features.epochs> epochs_;
};

template <ShardFeatures Features = ShardFeatures{}>
struct ThreadShards {
  static constexpr bool enabled = true;
  static constexpr ShardFeatures features = Features;
  template <class Ctx>
  using Layer = ShardLayer<Ctx, Features>;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
