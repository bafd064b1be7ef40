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
//   shard_table.hpp  the shards, and which thread owns each
//   bindings.hpp     each thread's binding (its shard, epoch slot and retire
//                    bag) and the registry entry the fast path reads
//   remote_free.hpp  other threads' frees: onto the block's slab's
//                    thread_free, and news of it to the owner
//   counts.hpp       snapshot counting: stats rows and the leak report
//   epochs.hpp       enter/leave/advance, retire and the retire bags
// and owns what ties them together: when a thread takes a shard and what it
// gives back when it leaves, the sending side of remote frees (per-slab
// batches in the owner's cache/remote_cache.hpp), and the order of the slow
// paths.
#pragma once

#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/heap/audited.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/shard/bindings.hpp>
#include <sydra/alloc/shard/counts.hpp>
#include <sydra/alloc/shard/epochs.hpp>
#include <sydra/alloc/shard/owner_slabs.hpp>
#include <sydra/alloc/shard/remote_free.hpp>
#include <sydra/alloc/shard/shard_table.hpp>

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
    const auto carve = static_cast<std::uint32_t>(std::clamp<std::size_t>(options.shard_cache.carve_bytes, 1, slab_bytes));
    if (!table_.make(backing, n, carve)) return;  // seed: a manager that cannot be created -> no shards
    if (!bindings_.join(this)) {  // no room in the thread registry: no manager, as when the array cannot be made
      table_.unmake(backing);
      return;
    }
    table_.open();
    bindings_.open();
  }
  ShardLayer(const ShardLayer&) = delete;
  ShardLayer& operator=(const ShardLayer&) = delete;
  ~ShardLayer() {
    shutdown();
    table_.unmake(backing_);
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
        bindings_.id(),
        [](void* self, void* state) { static_cast<ShardLayer*>(self)->drop(static_cast<Binding*>(state)); }, this);
    if constexpr (Features.epochs) epochs_.reclaim_all();  // no lock held: the handle's free may run
    for (std::size_t i = 0; i < table_.size(); ++i) reclaim_shard(table_[i], /*everything=*/true);
  }

  bool running() const noexcept { return table_.size() != 0; }
  std::size_t shard_count() const noexcept { return table_.size(); }

  // fork(): the spare retire bags' lock; shards and remote frees take none.
  void fork_lock() noexcept {
    if constexpr (Features.epochs) epochs_.fork_lock();
  }
  void fork_unlock() noexcept {
    if constexpr (Features.epochs) epochs_.fork_unlock();
  }
  // In a fork's child, once the departed threads' bindings are given back
  // (detail/fork_guard.hpp): the shards they held outside any binding
  // (ShardTable::settle_after_fork).
  void fork_settle() noexcept {
    if (!running()) return;
    table_.settle_after_fork([this](Shard& s) { empty_shard(s); });
  }

  // ---- The fast path -----------------------------------------------------------
  // The handle reads this thread's entry once (entry(), bound()), then pops
  // from its shard's head (pop(); the shard's half is Shard::pop and
  // Shard::push, shard/owner_slabs.hpp; bound() and has_shard(),
  // shard/bindings.hpp). No call on the way: an empty head returns nullptr
  // and the handle's slow path fills it.
  SYDRA_FAST_PATH const detail::ThreadEntry& entry() const noexcept { return bindings_.entry(); }
  SYDRA_FAST_PATH bool bound(const detail::ThreadEntry& e) const noexcept { return bindings_.bound(e); }
  SYDRA_FAST_PATH static bool has_shard(const detail::ThreadEntry& e) noexcept { return Bindings::has_shard(e); }

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
    if (!bound(e) || !has_shard(e)) return alloc_unbound(cls, bound(e));
    return alloc_refill(*s, cls);
  }

  // The whole of a free of one of this layer's blocks: onto its slab's free
  // list (the owner), or its thread_free (anyone else, batched per slab).
  SYDRA_SLOW_PATH void free(SlabMeta* slab, void* p) noexcept {
    if (free_fast(slab, p)) return;
    free_slow(*static_cast<Shard*>(slab->owner), slab, p);
  }

  // A block of another shard's slab m, freed by the thread that holds shard
  // `mine` (its bound entry's hot): batched with the thread's other frees to
  // that slab.
  void free_remote(void* mine, SlabMeta* m, void* p) noexcept {
    Shard& s = *static_cast<Shard*>(mine);
    const unsigned cls = m->size_class;
    track::on_take_back(p, Classes::sizes[cls]);
    typename Shard::BusyScope busy(s);
    s.remote_out[cls].bump();  // before the add: a publish may follow at once
    s.remote.add(m, p, remote_batch_, [this, &s](typename Remote::Batch& batch) { publish(s, batch); });
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
    table_.for_each_unowned([&](Shard& s) { n += reclaim_shard(s, false); });
    return n;
  }

  // For trim(): the caller's shard, and every shard no thread owns, give
  // their free blocks back to their slabs, so that empty slabs reach the pool.
  void drain() noexcept {
    if (!running()) return;
    if (Binding* b = binding(); b != nullptr && b->shard != nullptr) empty_shard(*b->shard);
    table_.for_each_unowned([this](Shard& s) { empty_shard(s); });
  }

  void collect_stats(Stats& out) noexcept
    requires(Features.stats)
  {
    out.has_shards = running();
    out.has_epochs = running() && Features.epochs;
    ShardSummary& sum = out.shards;
    sum.shard_count = table_.size();
    if constexpr (Features.epochs) {
      if (!running()) return;  // no manager: the epoch fields stay zero, as has_epochs says
      epochs_.summarize(sum, [this] { return bindings_.retired_total(); });
    }
    Counts{table_.data(), table_.size()}.summarize(sum);
  }

  LeakReport live() noexcept
    requires(Features.stats)
  {
    LeakReport r;
    Counts{table_.data(), table_.size()}.per_class([&r](unsigned c, std::uint64_t allocated, std::uint64_t returned) {
      r += LeakReport::difference(allocated, returned, allocated * Classes::sizes[c], returned * Classes::sizes[c]);
    });
    return r;
  }

 private:
  using Bindings = ShardBindings<Shard>;
  using Binding = typename Bindings::Binding;
  static_assert(sizeof(Binding) == binding_bytes);

  Binding* binding() noexcept {
    if (down_) return nullptr;
    detail::ThreadEntry* e = detail::thread_entry(bindings_.id(), this);
    return e != nullptr ? static_cast<Binding*>(e->state) : nullptr;
  }

  // ---- thread bindings -----------------------------------------------------------
  void* make_thread_state() noexcept override { return Bindings::make(backing_); }
  void* hot_of(void* state) noexcept override { return Bindings::hot(static_cast<Binding*>(state)->shard); }
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
      table_.abandon(*b->shard);
    } else if (b->shard != nullptr) {
      empty_shard(*b->shard);
      table_.give_back(*b->shard);
    }
    if constexpr (Features.epochs) epochs_.release(b->slot, b->bag);
    bindings_.destroy(backing_, b, Features.epochs);
  }

  // No shard in this thread's entry: bind, and take a shard if one is free.
  SYDRA_SLOW_PATH void* alloc_unbound(unsigned cls, bool bound) noexcept {
    if (!running() || down_ || (bound && table_.none_free())) return nullptr;
    detail::ThreadEntry* e = detail::thread_entry(bindings_.id(), this);
    if (e == nullptr) return nullptr;
    auto* b = static_cast<Binding*>(e->state);
    if (b->shard == nullptr) {
      b->shard = table_.take();
      e->hot = Bindings::hot(b->shard);
      if (b->shard == nullptr) return nullptr;
    }
    return alloc(cls);
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
    if (mine != nullptr) return free_remote(mine, m, p);
    // No shard here: one block, published at once.
    track::on_take_back(p, Classes::sizes[cls]);
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

  Pool& pool_;
  Allocator backing_;
  Bindings bindings_;
  ShardTable<Shard> table_;
  bool down_ = false;
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
