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
// How a shard's blocks move (rooms: cache/remote_cache.hpp,
// slab/class_slabs.hpp, epoch/):
//   magazine   per class, a small stack of free blocks: the fast path pops and
//              pushes here, owner only, no atomic read-modify-write
//   slabs      per class, the shard's slabs with their own free lists; half a
//              magazine moves to or from them at a time; an emptied slab goes
//              back to the pool for any class
//   deferred   per class, a lock-free stack that other threads push batches of
//              frees onto, each stamped with the epoch it was published in
//   ready      deferred blocks a collector found reclaimable; the owner takes
//              the whole list when its magazine runs dry
// Stacks are only ever taken whole (exchange), so no node is popped twice and
// there is no ABA.
#pragma once

#include <sydra/alloc/cache/remote_cache.hpp>
#include <sydra/alloc/detail/thread_registry.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/epoch/epoch_domain.hpp>
#include <sydra/alloc/epoch/retire_bags.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/policy/audited.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/slab/class_slabs.hpp>

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

namespace detail {
struct NoEpochs {
  explicit NoEpochs(Allocator) noexcept {}
};
struct NoBags {
  NoBags(auto&, Allocator, RetireBags::FreeFn, void*) noexcept {}
};
}  // namespace detail

template <class Ctx, ShardFeatures Features>
class ShardLayer final : public detail::ThreadHost {
 public:
  static constexpr bool enabled = true;
  static constexpr bool has_epochs = Features.epochs;
  static constexpr bool keeps_stats = Features.stats;
  using Classes = typename Ctx::Classes;
  using Pool = typename Ctx::Pool;
  using L = Links<Ctx::hardened>;
  using Remote = RemoteCache<Ctx::hardened>;
  static constexpr std::uint32_t max_magazine = 64;
  static constexpr std::size_t binding_bytes = 32;  // a thread's binding, from the backing heap (checked below)

  ShardLayer(Pool& pool, const PoolOptions& options, Allocator backing, ShardHooks hooks) noexcept
      : pool_(pool), backing_(backing), epochs_(backing), bags_(epochs_, backing, hooks.free_fn, hooks.ctx) {
    for (unsigned c = 0; c < Classes::count; ++c) {
      std::size_t cap = options.shard_cache.bytes_per_class / Classes::sizes[c];
      cap = std::clamp<std::size_t>(cap, std::min<std::uint32_t>(options.shard_cache.min_blocks, max_magazine),
                                    std::min<std::uint32_t>(options.shard_cache.max_blocks, max_magazine));
      cap_[c] = static_cast<std::uint32_t>(std::max<std::size_t>(cap, 2));
      batch_[c] = cap_[c] / 2;
    }
    const std::size_t n = options.shards == PoolOptions::policy_shards ? Features.count : options.shards;
    if (n == 0) return;  // seed: allocator_shards = 0 -> no manager
    void* mem = backing.alloc(n * sizeof(Shard), alignof(Shard));
    if (mem == nullptr) return;  // seed: a manager that cannot be created -> no shards
    shards_ = static_cast<Shard*>(mem);
    for (std::size_t i = 0; i < n; ++i) {
      Shard* s = ::new (&shards_[i]) Shard(static_cast<std::uint32_t>(i));
      for (unsigned c = 0; c < Classes::count; ++c) s->mag[c].cap = cap_[c];
    }
    id_ = detail::register_host(this);
    slot_ = static_cast<std::uint32_t>(id_ % detail::ThreadCache::ways);
    if (id_ == 0) {  // no room in the thread registry: no manager, as when the array cannot be made
      for (std::size_t i = 0; i < n; ++i) shards_[i].~Shard();
      backing.free(shards_, n * sizeof(Shard), alignof(Shard));
      shards_ = nullptr;
      return;
    }
    count_ = n;
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
  // (its remote batches published, its magazines emptied, its retire bag
  // sealed), then every retired block is freed, pinned readers or not:
  // nothing may outlive the handle. From the first step on, this layer hands
  // out no binding, so the frees that reclaiming makes take the paths that
  // need none.
  void shutdown() noexcept {
    if (down_) return;
    down_ = true;
    if constexpr (Features.epochs) {
      if constexpr (checked) {
        if (epochs_.pinned_count() != 0)
          report_misuse(Misuse::bad_request, "handle destroyed while a reader is pinned in its epoch", nullptr, 0, 0);
      }
    }
    detail::unregister_host(
        id_, [](void* self, void* state) { static_cast<ShardLayer*>(self)->drop(static_cast<Binding*>(state)); },
        this);
    if constexpr (Features.epochs) bags_.reclaim_all();  // no lock held: the handle's free may run
    for (std::size_t i = 0; i < count_; ++i) collect_shard(shards_[i], /*everything=*/true);
  }

  bool running() const noexcept { return count_ != 0; }
  std::size_t shard_count() const noexcept { return count_; }

  // fork(): the spare retire bags' lock; shards and remote frees take none.
  void fork_lock() noexcept {
    if constexpr (Features.epochs) bags_.fork_lock();
  }
  void fork_unlock() noexcept {
    if constexpr (Features.epochs) bags_.fork_unlock();
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
      if (owner != 0 && owner != me) {
        empty_shard(s);
        s.owner_thread.store(0, std::memory_order_release);
      }
      if (s.owner_thread.load(std::memory_order_relaxed) == 0) ++free_shards;
    }
    available_.store(free_shards, std::memory_order_relaxed);
  }

  // ---- The fast path -----------------------------------------------------------
  // The handle reads this thread's entry once (entry(), bound()), then pops
  // from its shard's magazine (pop()). No call on the way: an empty magazine
  // returns nullptr and the handle's slow path refills it.
  SYDRA_FAST_PATH const detail::ThreadEntry& entry() const noexcept { return detail::thread_cache.entries[slot_]; }
  // The entry is this layer's: the thread is bound (entry.hot is its shard,
  // or nullptr for a thread that found none free).
  SYDRA_FAST_PATH bool bound(const detail::ThreadEntry& e) const noexcept { return e.id == id_; }

  // False when the magazine is empty (out is then untouched).
  SYDRA_FAST_PATH bool pop(void* shard, unsigned cls, void*& out) noexcept {
    auto* s = static_cast<Shard*>(shard);
    MagState& m = s->mag[cls];
    const std::uint64_t w = m.word.load(std::memory_order_relaxed);
    const auto n = static_cast<std::uint32_t>(w & count_mask);
    if (SYDRA_UNLIKELY(n == 0)) return false;
    out = s->slots[cls][n - 1];
    m.word.store(w + count_mask, std::memory_order_relaxed);  // count - 1, allocations + 1
    track::on_hand_out(out, Classes::sizes[cls]);
    return true;
  }

  SYDRA_FAST_PATH void* alloc_fast(unsigned cls) noexcept {
    const detail::ThreadEntry& e = entry();
    void* p = nullptr;
    if (SYDRA_UNLIKELY(!bound(e) || e.hot == nullptr)) return nullptr;
    pop(e.hot, cls, p);
    return p;
  }

  // The owner's free of its own block, onto a magazine with room. False
  // (nothing done) for anything else.
  SYDRA_FAST_PATH bool free_fast(SlabMeta* slab, void* p) noexcept {
    const detail::ThreadEntry& e = entry();
    if (SYDRA_UNLIKELY(e.id != id_ || e.hot != slab->owner)) return false;
    return push(e.hot, slab->size_class, p);
  }
  // The handle's free fast path: `shard` is this thread's (from its entry)
  // and `cls` the class the caller's length names; the handle has checked
  // both against the slab. Taking the addresses from them rather than from
  // the slab's metadata keeps the next allocation's loads off the pagemap
  // lookup's chain of dependent loads.
  SYDRA_FAST_PATH bool push(void* shard, unsigned cls, void* p) noexcept {
    auto* s = static_cast<Shard*>(shard);
    MagState& m = s->mag[cls];
    const std::uint64_t w = m.word.load(std::memory_order_relaxed);
    const auto n = static_cast<std::uint32_t>(w & count_mask);
    if (SYDRA_UNLIKELY(n >= m.cap)) return false;
    track::on_take_back(p, Classes::sizes[cls]);
    s->slots[cls][n] = p;
    m.word.store(w + 1, std::memory_order_relaxed);
    m.frees.bump();
    return true;
  }
  // ---- End of the fast path ----------------------------------------------------

  // The whole of an allocation: the fast path, then binding a shard, refilling
  // the magazine. nullptr: no shard for this thread, or out of memory.
  SYDRA_SLOW_PATH void* alloc(unsigned cls) noexcept {
    if (void* p = alloc_fast(cls)) return p;
    const detail::ThreadEntry& e = entry();
    auto* s = static_cast<Shard*>(e.hot);
    if (e.id != id_ || s == nullptr) return alloc_unbound(cls, e.id == id_);
    return alloc_refill(*s, cls);
  }

  // The whole of a free of one of this layer's blocks: the owner's magazine
  // (spilling half to the slabs when full), or a deferral to the owner.
  SYDRA_SLOW_PATH void free(SlabMeta* slab, void* p) noexcept {
    if (free_fast(slab, p)) return;
    const unsigned cls = slab->size_class;
    track::on_take_back(p, Classes::sizes[cls]);
    free_slow(*static_cast<Shard*>(slab->owner), cls, p);
  }

  // ---- Epochs --------------------------------------------------------------------
  std::optional<std::uint64_t> enter_epoch() noexcept
    requires(Features.epochs)
  {
    EpochDomain::Slot* slot = local_slot();
    if (slot == nullptr) return std::nullopt;
    return epochs_.pin(*slot);
  }
  void leave_epoch(std::uint64_t observed) noexcept
    requires(Features.epochs)
  {
    EpochDomain::Slot* slot = local_slot();
    if (slot == nullptr) return;
    if constexpr (checked) {
      if (slot->depth == 1 && slot->pinned.load(std::memory_order_relaxed) != observed)
        report_misuse(Misuse::bad_request, "leave_epoch with an epoch other than enter_epoch returned", nullptr, 0,
                      observed);
    }
    if (!epochs_.unpin(*slot) && checked)
      report_misuse(Misuse::bad_request, "leave_epoch without enter_epoch", nullptr, 0, observed);
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
    if (!bags_.retire(b->bag, mem, len, align)) return false;
    b->retired.bump();
    return true;
  }

  // Reclaims what the epoch invariant allows: the caller's open retire bag is
  // sealed, the epoch advanced once, sealed bags freed, every shard's deferred
  // stack sorted into ready blocks, and the caller's own batches published.
  // Safe from any thread. Returns the blocks made reusable.
  std::size_t collect() noexcept {
    if (!running()) return 0;
    std::size_t n = 0;
    Binding* b = binding();
    if constexpr (Features.epochs) {
      if (b != nullptr) bags_.seal_only(b->bag);  // advanced and collected once, below
      epochs_.advance();
      n += bags_.collect();
    }
    // After the reclaiming above, whose frees may have joined this thread's
    // own batches: published now, collected just below.
    if (b != nullptr && b->shard != nullptr) publish_all(*b->shard);
    for (std::size_t i = 0; i < count_; ++i)
      for (unsigned c = 0; c < Classes::count; ++c) n += collect_class(shards_[i], c);
    return n;
  }

  // For trim(): the caller's shard, and every shard no thread owns, give
  // their free blocks back to their slabs, so that empty slabs reach the pool.
  void drain() noexcept {
    if (!running()) return;
    if (Binding* b = binding(); b != nullptr && b->shard != nullptr) empty_shard(*b->shard);
    for (std::size_t i = 0; i < count_; ++i) {
      Shard& s = shards_[i];
      std::uint64_t expected = 0;
      if (s.owner_thread.load(std::memory_order_relaxed) != 0 ||
          !s.owner_thread.compare_exchange_strong(expected, detail::thread_token(), std::memory_order_acquire))
        continue;
      empty_shard(s);
      s.owner_thread.store(0, std::memory_order_release);
    }
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
      sum.current_epoch = epochs_.current();
      const std::uint64_t m = epochs_.min_pinned();
      sum.min_pinned_epoch = m == EpochDomain::nobody_pinned ? 0 : m;
      sum.pinned_threads = epochs_.pinned_count();
      const std::uint64_t reclaimed = bags_.reclaimed_blocks();  // removals first
      sum.retired = retired_total();
      sum.retired_pending = sum.retired > reclaimed ? sum.retired - reclaimed : 0;
    }
    try {
      sum.shards.assign(count_, ShardStats{});
    } catch (...) {
      sum.shards.clear();
    }
    // Each shard's entries are made before any counter is read; a shard whose
    // entries could not be made is left out of every pass (its row stays
    // empty), so the counters are read straight into the rows that exist.
    for (std::size_t i = 0; i < sum.shards.size(); ++i) {
      try {
        sum.shards[i].classes.resize(Classes::count);
      } catch (...) {
        sum.shards[i].classes.clear();
      }
    }
    ShardSummary* rows = &sum;
    const Transit t = read_counts([rows](std::size_t i, unsigned c) -> ShardClassStats* {
      if (i >= rows->shards.size() || rows->shards[i].classes.size() != Classes::count) return nullptr;
      return &rows->shards[i].classes[c];
    });
    sum.in_transit = t.total;
    for (std::size_t i = 0; i < count_ && i < sum.shards.size(); ++i) {
      Shard& s = shards_[i];
      ShardStats& st = sum.shards[i];
      st.index = s.index;
      st.owned = s.owner_thread.load(std::memory_order_relaxed) != 0;
      if (st.classes.size() != Classes::count) continue;
      std::uint64_t slabs = 0;
      for (unsigned c = 0; c < Classes::count; ++c) {
        ShardClassStats& k = st.classes[c];
        k.size = Classes::sizes[c];
        k.in_use = in_use_of(k);
        k.slabs = s.slab_count[c].load(std::memory_order_relaxed);
        slabs += k.slabs;
        st.alloc_hits += k.allocations;
        st.backlog += k.deferred > k.reclaimed ? k.deferred - k.reclaimed : 0;
        sum.deferred_total += k.deferred;
        sum.reclaimed_total += k.reclaimed;
      }
      st.reserved_bytes = slabs * slab_bytes;
      sum.alloc_hits += st.alloc_hits;
      sum.backlog += st.backlog;
    }
  }

  // Needs no memory: every shard's counts are summed per class as they are
  // read, so the leak report is exact (when quiet) even with the heap gone.
  LeakReport live() noexcept
    requires(Features.stats)
  {
    std::array<ShardClassStats, Classes::count> sums{};
    ShardClassStats* first = sums.data();
    const Transit t = read_counts([first](std::size_t, unsigned c) { return first + c; });
    LeakReport r;
    for (unsigned c = 0; c < Classes::count; ++c) {
      const ShardClassStats& k = sums[c];
      const std::uint64_t out = k.frees + k.deferred + t.of[c];
      r += LeakReport::difference(k.allocations, out, k.allocations * Classes::sizes[c], out * Classes::sizes[c]);
    }
    return r;
  }

 private:
  static constexpr std::uint64_t count_mask = 0xffff;

  struct MagState {  // a magazine's counts: owner-written, read by snapshots
    std::atomic<std::uint64_t> word{0};  // low 16 bits: blocks held; high 48: allocations
    Counter<> frees;                     // the owner's frees of this shard's blocks
    std::uint32_t cap = 0;
  };
  struct alignas(64) Inbox {  // pushed by any thread
    std::atomic<FreeNode*> deferred{nullptr};
    std::atomic<FreeNode*> ready{nullptr};
    Counter<> deferred_count;  // blocks published to this class, counted before they are pushed
    Counter<> reclaimed;       // of those, found reclaimable by a collector
  };
  struct alignas(64) Shard {
    explicit Shard(std::uint32_t i) noexcept : index(i) {}
    std::array<MagState, Classes::count> mag{};
    std::array<std::array<void*, max_magazine>, Classes::count> slots;  // the magazines' blocks, owner only
    std::array<ClassSlabs<Ctx::hardened>, Classes::count> slabs{};
    std::array<std::atomic<std::uint64_t>, Classes::count> slab_count{};
    Remote remote;
    std::array<Counter<>, Classes::count> remote_out{};  // the owner's frees of other shards' blocks
    std::array<Counter<>, Classes::count> published{};   // of those, published to their owners
    std::uint32_t index;
    alignas(64) std::atomic<std::uint64_t> owner_thread{0};  // 0: free to take
    std::array<Inbox, Classes::count> inbox{};
  };
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
  void* hot_of(void* state) noexcept override { return static_cast<Binding*>(state)->shard; }
  void on_thread_exit(void* state) noexcept override { drop(static_cast<Binding*>(state)); }

  // A thread leaves (exit, or the layer's shutdown): its shard is emptied and
  // released with its deferred stacks intact, its epoch slot released, its
  // retire bag sealed.
  void drop(Binding* b) noexcept {
    if (b->shard != nullptr) {
      empty_shard(*b->shard);
      b->shard->owner_thread.store(0, std::memory_order_release);
      available_.fetch_add(1, std::memory_order_relaxed);
    }
    if constexpr (Features.epochs) {
      if (b->slot != nullptr) epochs_.release_slot(b->slot);
      bags_.seal_only(b->bag);  // collected by the next seal or collect_garbage(), never here
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
      e->hot = b->shard;
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
    if (b->slot == nullptr) b->slot = epochs_.claim_slot();
    return b->slot;
  }

  // ---- the owner's slow paths ----------------------------------------------------
  // The magazine ran dry: ready blocks first, then this class's deferred
  // stack, then the slabs (half a magazine at a time).
  SYDRA_SLOW_PATH void* alloc_refill(Shard& s, unsigned cls) noexcept {
    pool_.tick();  // no lock held here: the retention policy's decommits may run
    publish_all(s);
    MagState& m = s.mag[cls];
    if (take_ready(s, cls) == 0 && s.inbox[cls].deferred.load(std::memory_order_relaxed) != nullptr) {
      collect_class(s, cls);
      take_ready(s, cls);
    }
    std::uint64_t w = m.word.load(std::memory_order_relaxed);
    if ((w & count_mask) == 0) {
      const unsigned n = s.slabs[cls].take(pool_, identity(s, cls), batch_[cls], s.slots[cls].data());
      note_slabs(s, cls);
      if (n == 0) return nullptr;  // out of memory: the handle tries the buckets, then the fallback
      w += n;
    }
    const auto n = static_cast<std::uint32_t>(w & count_mask);
    void* p = s.slots[cls][n - 1];
    m.word.store(w + count_mask, std::memory_order_relaxed);
    track::on_hand_out(p, Classes::sizes[cls]);
    return p;
  }

  // Moves the ready list into the magazine (the rest to the slabs).
  unsigned take_ready(Shard& s, unsigned cls) noexcept {
    FreeNode* n = s.inbox[cls].ready.exchange(nullptr, std::memory_order_acquire);
    if (n == nullptr) return 0;
    MagState& m = s.mag[cls];
    std::uint64_t w = m.word.load(std::memory_order_relaxed);
    unsigned moved = 0;
    while (n != nullptr) {
      FreeNode* next = L::load_next(n);
      if ((w & count_mask) < m.cap) {
        s.slots[cls][w & count_mask] = n;
        ++w;
      } else {
        s.slabs[cls].give(pool_, Pagemap::lookup(n), n);
      }
      ++moved;
      n = next;
    }
    m.word.store(w, std::memory_order_relaxed);
    note_slabs(s, cls);
    return moved;
  }

  // Not the owner's fast case: the magazine is full, or the block belongs to
  // another shard, or this thread's entry was evicted by another handle.
  SYDRA_SLOW_PATH void free_slow(Shard& owner, unsigned cls, void* p) noexcept {
    Binding* b = binding();
    Shard* mine = b != nullptr ? b->shard : nullptr;
    if (mine == &owner) {
      MagState& m = owner.mag[cls];
      if ((m.word.load(std::memory_order_relaxed) & count_mask) >= m.cap) spill(owner, cls, batch_[cls]);
      const std::uint64_t w = m.word.load(std::memory_order_relaxed);
      owner.slots[cls][w & count_mask] = p;
      m.word.store(w + 1, std::memory_order_relaxed);
      m.frees.bump();
      return;
    }
    if (mine != nullptr) {  // batched with this thread's other frees to that shard
      mine->remote_out[cls].bump();  // before the add: a publish may follow at once
      mine->remote.add(&owner, owner.index, cls, p, batch_[cls],
                       [this, mine](typename Remote::Batch& batch) { publish(*mine, batch); });
      return;
    }
    // No shard here: one block, published at once.
    publish_chain(owner, cls, static_cast<FreeNode*>(p), static_cast<FreeNode*>(p), 1);
  }

  // Gives `n` blocks from the top of a magazine back to their slabs.
  void spill(Shard& s, unsigned cls, std::uint32_t n) noexcept {
    MagState& m = s.mag[cls];
    std::uint64_t w = m.word.load(std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < n && (w & count_mask) != 0; ++i) {
      void* q = s.slots[cls][(w & count_mask) - 1];
      --w;
      s.slabs[cls].give(pool_, Pagemap::lookup(q), q);
    }
    m.word.store(w, std::memory_order_relaxed);
    note_slabs(s, cls);
  }

  // Everything the shard holds free goes back to its slabs: magazines,
  // ready blocks, reclaimable deferred blocks; its own batches are published.
  void empty_shard(Shard& s) noexcept {
    publish_all(s);
    for (unsigned c = 0; c < Classes::count; ++c) {
      collect_class(s, c);
      take_ready(s, c);
      spill(s, c, max_magazine);
    }
  }

  void publish_all(Shard& s) noexcept {
    s.remote.flush([this, &s](typename Remote::Batch& batch) { publish(s, batch); });
  }
  void publish(Shard& from, typename Remote::Batch& batch) noexcept {
    from.published[batch.cls].bump(batch.count);  // before the destination counts it: see read_counts()
    publish_chain(*static_cast<Shard*>(batch.dest), batch.cls, batch.head, batch.tail, batch.count);
  }
  void publish_chain(Shard& dest, unsigned cls, FreeNode* head, FreeNode* tail, std::uint32_t count) noexcept {
    Inbox& in = dest.inbox[cls];
    // Counted before it is published: once pushed, a collector may count it
    // reclaimed, and reclaimed must never run ahead of deferred.
    in.deferred_count.add(count);
    std::uint64_t stamp = 1;
    if constexpr (Features.epochs) stamp = epochs_.current();
    L::store_link(head, head == tail ? nullptr : L::load_next(head), stamp);
    push_chain(in.deferred, head, tail);
  }

  static void push_chain(std::atomic<FreeNode*>& stack, FreeNode* head, FreeNode* tail) noexcept {
    FreeNode* old = stack.load(std::memory_order_relaxed);
    do {
      L::store_next(tail, old);
    } while (!stack.compare_exchange_weak(old, head, std::memory_order_release, std::memory_order_relaxed));
  }

  // Takes a class's whole deferred stack, moves the batches that no pinned
  // reader can still see to `ready`, and pushes the rest back in order. Any
  // thread may run it.
  //
  // The minimum pinned epoch is read only after the stack is taken. The
  // exchange synchronises with every push in it, and each push read its stamp
  // after its blocks were freed, so any reader pinned before that is visible
  // to this scan. Read before the exchange, a reader that pinned in between
  // would be missed and its block handed out under it.
  std::size_t collect_class(Shard& s, unsigned cls, bool everything = false) noexcept {
    Inbox& in = s.inbox[cls];
    FreeNode* all = in.deferred.exchange(nullptr, std::memory_order_acquire);
    if (all == nullptr) return 0;
    std::uint64_t safe_below = EpochDomain::nobody_pinned;
    if constexpr (Features.epochs) {
      if (!everything) safe_below = epochs_.min_pinned();
    }
    FreeNode *ready_head = nullptr, *ready_tail = nullptr, *keep_head = nullptr, *keep_tail = nullptr;
    std::size_t moved = 0;
    bool reclaim = false;
    for (FreeNode* n = all; n != nullptr;) {
      FreeNode* next = L::load_next(n);
      const std::uint64_t stamp = L::load_epoch(n);
      if (stamp != 0) reclaim = EpochDomain::reclaimable(stamp, safe_below);  // a batch's first block
      FreeNode*& head = reclaim ? ready_head : keep_head;
      FreeNode*& tail = reclaim ? ready_tail : keep_tail;
      if (reclaim) {
        if constexpr (checked) junk_fill(n, Classes::sizes[cls]);
        ++moved;
      }
      if (tail != nullptr) L::store_next(tail, n);
      else head = n;
      tail = n;
      n = next;
    }
    if (ready_head != nullptr) {
      L::store_next(ready_tail, nullptr);
      push_chain(in.ready, ready_head, ready_tail);
      in.reclaimed.add(moved);
    }
    if (keep_head != nullptr) push_chain(in.deferred, keep_head, keep_tail);
    return moved;
  }
  std::size_t collect_shard(Shard& s, bool everything) noexcept {
    std::size_t n = 0;
    for (unsigned c = 0; c < Classes::count; ++c) n += collect_class(s, c, everything);
    return n;
  }

  // Checked builds: overwrite a reclaimed block (past its link) so that a
  // reader that should still have been protected sees junk, not stale data.
  SYDRA_NO_ASAN static void junk_fill(FreeNode* n, std::size_t size) noexcept {
    track::link_access_begin(n, size);
    auto* bytes = reinterpret_cast<volatile unsigned char*>(n);
    for (std::size_t i = sizeof(FreeNode); i < size; ++i) bytes[i] = 0xDF;
    track::link_access_end(n, size);
  }

  SlabIdentity identity(Shard& s, unsigned cls) noexcept {
    return {SlabKind::shard, &s, cls, Classes::sizes[cls]};
  }
  void note_slabs(Shard& s, unsigned cls) noexcept {
    s.slab_count[cls].store(s.slabs[cls].slabs(), std::memory_order_relaxed);
  }

  // ---- counting ---------------------------------------------------------------------
  static std::uint64_t in_use_of(const ShardClassStats& k) noexcept {
    return k.allocations > k.frees + k.deferred ? k.allocations - k.frees - k.deferred : 0;
  }
  struct Transit {  // remote frees held in batches, not yet published: per class and in all
    std::array<std::uint64_t, Classes::count> of{};
    std::uint64_t total = 0;
  };
  // Removals before additions, in one order for every shard: reclaimed,
  // deferred (the destination's count, bumped after the sender's
  // `published`), published, remote frees, local frees, then allocations. So
  // no free is seen twice, and no free is seen without the allocation before
  // it: in-use counts never go below zero.
  //
  // `at(shard, cls)` names where that shard's class counts go (added, so one
  // place may sum several shards), or nullptr to leave it out. Nothing is
  // allocated here: a snapshot short of memory reports fewer rows, never
  // reads past the ones it has.
  template <class At>
  Transit read_counts(At at) const noexcept {
    for (std::size_t i = 0; i < count_; ++i)  // reclaimed before deferred: never ahead of it
      for (unsigned c = 0; c < Classes::count; ++c)
        if (ShardClassStats* k = at(i, c)) k->reclaimed += shards_[i].inbox[c].reclaimed.get();
    for (std::size_t i = 0; i < count_; ++i)
      for (unsigned c = 0; c < Classes::count; ++c)
        if (ShardClassStats* k = at(i, c)) k->deferred += shards_[i].inbox[c].deferred_count.get();
    // In transit is a sum over every shard, whatever the rows: its blocks are
    // still in their home shard's count.
    std::array<std::uint64_t, Classes::count> published{}, remote{};
    for (std::size_t i = 0; i < count_; ++i)
      for (unsigned c = 0; c < Classes::count; ++c) published[c] += shards_[i].published[c].get();
    for (std::size_t i = 0; i < count_; ++i)
      for (unsigned c = 0; c < Classes::count; ++c) remote[c] += shards_[i].remote_out[c].get();
    for (std::size_t i = 0; i < count_; ++i)
      for (unsigned c = 0; c < Classes::count; ++c)
        if (ShardClassStats* k = at(i, c)) k->frees += shards_[i].mag[c].frees.get();
    for (std::size_t i = 0; i < count_; ++i)
      for (unsigned c = 0; c < Classes::count; ++c)
        if (ShardClassStats* k = at(i, c)) {
          const std::uint64_t w = shards_[i].mag[c].word.load(std::memory_order_acquire);
          k->allocations += w >> 16;
          k->cached += w & count_mask;
        }
    Transit t;
    for (unsigned c = 0; c < Classes::count; ++c) {
      t.of[c] = remote[c] > published[c] ? remote[c] - published[c] : 0;
      t.total += t.of[c];
    }
    return t;
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
  bool down_ = false;
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> available_{0};
  std::atomic<std::uint64_t> departed_retired_{0};
  std::array<std::uint32_t, Classes::count> cap_{};
  std::array<std::uint32_t, Classes::count> batch_{};
  [[no_unique_address]] std::conditional_t<Features.epochs, EpochDomain, detail::NoEpochs> epochs_;
  [[no_unique_address]] std::conditional_t<Features.epochs, RetireBags, detail::NoBags> bags_;
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
