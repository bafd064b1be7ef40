// ShardPolicy implementations.
//
// NoShards: no per-thread pools and no epochs.
// ThreadShards: the seed's ShardManager, made correct.
//   - `count` shards; a thread takes one round-robin (an atomic counter picks
//     where to start looking) and holds it alone until it exits. A thread that
//     finds none free is a miss and uses the bucket path.
//   - Each shard keeps, per size class, an owner-only free list and bump
//     region (the fast path: no lock, no atomic read-modify-write), and two
//     lock-free stacks that other threads push to: `deferred` (frees from
//     other threads, stamped with the epoch) and `ready`
//     (deferred blocks a collector found reclaimable). Only the owner pops
//     `ready`, and only whole lists are ever taken, so there is no ABA.
//   - Thread exit releases the shard with both stacks intact; the next thread
//     to take it inherits its blocks and its backlog.
#pragma once

#include <sydra/alloc/detail/thread_binding.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/mixin/epoch.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/policy/audited.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/slab/slab.hpp>

#include <array>
#include <atomic>
#include <optional>

namespace sydra::alloc {
inline namespace v1 {

struct NoShards {
  static constexpr bool enabled = false;
  constexpr NoShards() noexcept = default;
  template <class Source>
  constexpr NoShards(Source&, const PoolOptions&) noexcept {}
};

class ThreadShards final : detail::ShardManagerBase {
  struct Shard;

 public:
  static constexpr bool enabled = true;

  ThreadShards(SlabSource& slabs, const PoolOptions& options) noexcept : slabs_(slabs), epochs_(slabs.backing()) {
    if (options.shards == 0) return;  // seed: allocator_shards = 0 -> no manager
    void* mem = slabs.backing().alloc(options.shards * sizeof(Shard), alignof(Shard));
    if (mem == nullptr) return;  // seed: a manager that cannot be created -> no shards
    shards_ = static_cast<Shard*>(mem);
    for (std::size_t i = 0; i < options.shards; ++i) ::new (&shards_[i]) Shard(static_cast<std::uint32_t>(i));
    count_ = options.shards;
    available_.store(count_, std::memory_order_relaxed);
    id_ = detail::register_manager(this);
  }
  ThreadShards(const ThreadShards&) = delete;
  ThreadShards& operator=(const ThreadShards&) = delete;
  ~ThreadShards() {
    if (shards_ == nullptr) return;
    detail::unregister_manager(id_);
    for (std::size_t i = 0; i < count_; ++i) {
      for (SlabHeader* s = shards_[i].slabs; s != nullptr;) {
        SlabHeader* next = s->next_slab;
        slabs_.release(s);
        s = next;
      }
      shards_[i].~Shard();
    }
    slabs_.backing().free(shards_, count_ * sizeof(Shard), alignof(Shard));
  }

  bool running() const noexcept { return count_ != 0; }
  std::size_t shard_count() const noexcept { return count_; }

  // ---- The fast path ---------------------------------------------------------
  // This thread's shard, from the thread-local cache; then a pop from the
  // class's owner-only free list. nullptr means "not here": the caller goes
  // on to the buckets.
  SYDRA_FAST_PATH void* alloc(unsigned cls) noexcept {
    Shard* s = local_shard();
    if (SYDRA_UNLIKELY(s == nullptr)) return nullptr;
    Local& c = s->local[cls];
    FreeNode* n = c.free;
    if (SYDRA_UNLIKELY(n == nullptr)) return alloc_refill(*s, cls);
    c.free = load_next(n);
    c.allocations.bump();
    track::on_hand_out(n, size_classes[cls]);
    return n;
  }

  // This thread's shard owns the block: push it back on its own list. A
  // bucket slab's owner is a Bucket, never equal to a Shard, so no kind check
  // is needed first. `cls` is the block's class (the handle has checked it, or
  // trusts the sized free).
  SYDRA_FAST_PATH bool try_free_local(SlabHeader* slab, void* mem, unsigned cls) noexcept {
    const detail::ShardCache& tc = detail::shard_cache;
    if (SYDRA_UNLIKELY(slab->owner != tc.shard || tc.manager_id != id_)) return false;
    auto* n = static_cast<FreeNode*>(mem);
    track::on_take_back(n, size_classes[cls]);
    free_local(*static_cast<Shard*>(slab->owner), cls, n);
    return true;
  }

  // A block of one of our slabs. The owner pushes it back on its own list;
  // anyone else defers it onto the owner's lock-free stack.
  SYDRA_FAST_PATH void free(SlabHeader* slab, void* mem, unsigned cls) noexcept {
    if (try_free_local(slab, mem, cls)) return;
    auto* n = static_cast<FreeNode*>(mem);
    track::on_take_back(n, size_classes[cls]);
    free_not_cached(*static_cast<Shard*>(slab->owner), cls, n);
  }
  // ---- End of the fast path --------------------------------------------------

  // ---- Epochs ----------------------------------------------------------------
  std::optional<std::uint64_t> enter_epoch() noexcept {
    EpochDomain::Slot* slot = local_slot();
    if (slot == nullptr) return std::nullopt;
    return epochs_.pin(*slot);
  }
  void leave_epoch(std::uint64_t observed) noexcept {
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
  std::optional<std::uint64_t> advance_epoch() noexcept {
    if (!running()) return std::nullopt;
    return epochs_.advance();
  }
  std::uint64_t current_epoch() const noexcept { return epochs_.current(); }
  std::uint64_t min_pinned() const noexcept { return epochs_.min_pinned(); }

  // Moves every deferred block that the epoch invariant allows onto its
  // shard's ready list. Safe from any thread; returns the blocks moved. The
  // caller advances the epoch (collect_garbage does, once per call).
  std::size_t collect() noexcept {
    if (!running()) return 0;
    std::size_t moved = 0;
    for (std::size_t i = 0; i < count_; ++i)
      for (unsigned cls = 0; cls < class_count; ++cls) moved += collect_class(shards_[i], cls);
    return moved;
  }

  void collect_stats(Stats& out) const noexcept {
    out.has_shards = running();
    ShardSummary& sum = out.shards;
    sum.shard_count = count_;
    sum.alloc_misses = misses_.get();
    sum.current_epoch = epochs_.current();
    const std::uint64_t m = epochs_.min_pinned();
    sum.min_pinned_epoch = m == EpochDomain::nobody_pinned ? 0 : m;
    sum.pinned_threads = epochs_.pinned_count();
    sum.shards.clear();
    try {
      sum.shards.resize(count_);
    } catch (...) {
      return;  // a snapshot without the per-shard table is still consistent
    }
    for (std::size_t i = 0; i < count_; ++i) {
      const Shard& s = shards_[i];
      ShardStats& st = sum.shards[i];
      st.index = s.index;
      st.owned = s.owner_thread.load(std::memory_order_relaxed) != 0;
      for (unsigned cls = 0; cls < class_count; ++cls) {
        ShardClassStats& c = st.classes[cls];
        // Removals are read before additions (acquire), so in_use is never negative.
        c.reclaimed = s.remote[cls].reclaimed.get();
        c.deferred = s.remote[cls].deferred_count.get();
        const std::uint64_t frees = s.local[cls].frees.get();
        c.allocations = s.local[cls].allocations.get();
        c.size = size_classes[cls];
        c.in_use = c.allocations - frees - c.deferred;
        st.alloc_hits += c.allocations;
        st.backlog += c.deferred - c.reclaimed;
        sum.deferred_total += c.deferred;
        sum.reclaimed_total += c.reclaimed;
      }
      sum.alloc_hits += st.alloc_hits;
      sum.backlog += st.backlog;
    }
  }

  LeakReport live() const noexcept {
    LeakReport r;
    for (std::size_t i = 0; i < count_; ++i)
      for (unsigned cls = 0; cls < class_count; ++cls) {
        const Shard& s = shards_[i];
        // Removals first, then additions (acquire), as in collect_stats: never negative.
        const std::uint64_t deferred = s.remote[cls].deferred_count.get();
        const std::uint64_t frees = s.local[cls].frees.get();
        const std::uint64_t n = s.local[cls].allocations.get() - frees - deferred;
        r.blocks += n;
        r.bytes += n * size_classes[cls];
      }
    return r;
  }

 private:
  struct Local {  // owner-only
    FreeNode* free = nullptr;
    char* bump = nullptr;
    char* bump_end = nullptr;
    Counter<true> allocations, frees;  // always kept: leak reports need them
  };
  struct alignas(64) Remote {  // pushed by any thread
    std::atomic<FreeNode*> deferred{nullptr};
    std::atomic<FreeNode*> ready{nullptr};
    Counter<true> deferred_count, reclaimed;
  };
  struct alignas(64) Shard {
    explicit Shard(std::uint32_t i) noexcept : index(i) {}
    std::atomic<std::uint64_t> owner_thread{0};  // 0: free to take
    std::uint32_t index;
    SlabHeader* slabs = nullptr;  // owner-only (or teardown)
    std::array<Local, class_count> local{};
    std::array<Remote, class_count> remote{};
  };

  SYDRA_FAST_PATH Shard* local_shard() noexcept {
    const detail::ShardCache& tc = detail::shard_cache;
    if (SYDRA_LIKELY(tc.manager_id == id_ && tc.shard != nullptr)) return static_cast<Shard*>(tc.shard);
    return bind_shard();
  }

  // First allocation of this thread, or a thread without a shard: bind, try
  // to take a free shard, and count a miss if there is none.
  SYDRA_SLOW_PATH Shard* bind_shard() noexcept {
    if (!running()) return nullptr;
    detail::ThreadBinding* b = detail::bind_thread(id_, this);
    if (b == nullptr) {
      misses_.add();
      return nullptr;
    }
    if (b->shard == nullptr && available_.load(std::memory_order_relaxed) > 0) b->shard = try_take_shard();
    detail::ShardCache& tc = detail::shard_cache;
    tc.manager_id = id_;
    tc.shard = b->shard;
    tc.epoch_slot = b->epoch_slot;
    if (b->shard == nullptr) misses_.add();
    return static_cast<Shard*>(b->shard);
  }

  Shard* try_take_shard() noexcept {
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

  EpochDomain::Slot* local_slot() noexcept {
    detail::ShardCache& tc = detail::shard_cache;
    if (SYDRA_LIKELY(tc.manager_id == id_ && tc.epoch_slot != nullptr))
      return static_cast<EpochDomain::Slot*>(tc.epoch_slot);
    if (!running()) return nullptr;
    detail::ThreadBinding* b = detail::bind_thread(id_, this);
    if (b == nullptr) return nullptr;
    if (b->epoch_slot == nullptr) b->epoch_slot = epochs_.claim_slot();
    tc.manager_id = id_;
    tc.shard = b->shard;
    tc.epoch_slot = b->epoch_slot;
    return static_cast<EpochDomain::Slot*>(b->epoch_slot);
  }

  void on_thread_exit(void* shard, void* slot) noexcept override {
    if (slot != nullptr) epochs_.release_slot(static_cast<EpochDomain::Slot*>(slot));
    if (shard != nullptr) {
      static_cast<Shard*>(shard)->owner_thread.store(0, std::memory_order_release);
      available_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  SYDRA_FAST_PATH static void free_local(Shard& owner, unsigned cls, FreeNode* n) noexcept {
    Local& c = owner.local[cls];
    store_next(n, c.free);
    c.free = n;
    c.frees.bump();
  }

  // The cache names another handle's shard (or none): this thread may still
  // own the block's shard, in which case the free is local after all.
  SYDRA_SLOW_PATH void free_not_cached(Shard& owner, unsigned cls, FreeNode* n) noexcept {
    if (owner.owner_thread.load(std::memory_order_relaxed) == detail::thread_token()) return free_local(owner, cls, n);
    defer(owner, cls, n);
  }

  void defer(Shard& owner, unsigned cls, FreeNode* n) noexcept {
    Remote& r = owner.remote[cls];
    // Counted before it is published: once pushed, a collector may count it
    // reclaimed, and reclaimed must never run ahead of deferred.
    r.deferred_count.add();
    const std::uint64_t stamp = epochs_.current();
    FreeNode* head = r.deferred.load(std::memory_order_relaxed);
    do {
      store_link(n, head, stamp);
    } while (!r.deferred.compare_exchange_weak(head, n, std::memory_order_release, std::memory_order_relaxed));
  }

  // The owner's list ran dry: take what collectors made ready, else collect
  // this class now, else carve, else take a new slab.
  SYDRA_SLOW_PATH void* alloc_refill(Shard& s, unsigned cls) noexcept {
    Local& c = s.local[cls];
    Remote& r = s.remote[cls];
    FreeNode* list = r.ready.exchange(nullptr, std::memory_order_acquire);
    if (list == nullptr && r.deferred.load(std::memory_order_relaxed) != nullptr && collect_class(s, cls) != 0)
      list = r.ready.exchange(nullptr, std::memory_order_acquire);
    FreeNode* n = list;
    if (n != nullptr) {
      c.free = load_next(n);
    } else {
      if (c.bump == c.bump_end) {
        SlabHeader* slab = slabs_.acquire(SlabKind::shard, cls, &s);
        if (slab == nullptr) return nullptr;
        slab->next_slab = s.slabs;
        s.slabs = slab;
        c.bump = slab->first_block();
        c.bump_end = slab->end();
      }
      n = reinterpret_cast<FreeNode*>(c.bump);
      c.bump += size_classes[cls];
    }
    c.allocations.bump();
    track::on_hand_out(n, size_classes[cls]);
    return n;
  }

  // Takes the whole deferred stack, moves reclaimable blocks to `ready` and
  // pushes the rest back. Any thread may run it: taking whole lists with
  // exchange and pushing with CAS never races on a node.
  //
  // The minimum pinned epoch is read only after the list is taken. The
  // exchange synchronises with every push in it, and each push read its
  // stamp after the block was unlinked, so any reader pinned before that
  // unlink is visible to this scan. Read before the exchange, a reader that
  // pinned in between would be missed and its block handed out under it.
  std::size_t collect_class(Shard& s, unsigned cls) noexcept {
    Remote& r = s.remote[cls];
    FreeNode* all = r.deferred.exchange(nullptr, std::memory_order_acquire);
    if (all == nullptr) return 0;
    const std::uint64_t safe_below = epochs_.min_pinned();
    FreeNode *ready_head = nullptr, *ready_tail = nullptr, *keep_head = nullptr, *keep_tail = nullptr;
    std::size_t moved = 0;
    for (FreeNode* n = all; n != nullptr;) {
      FreeNode* next = load_next(n);
      const std::uint64_t stamp = load_epoch(n);
      if (EpochDomain::reclaimable(stamp, safe_below)) {
        if constexpr (checked) junk_fill(n, size_classes[cls]);
        store_link(n, ready_head, stamp);
        ready_head = n;
        if (ready_tail == nullptr) ready_tail = n;
        ++moved;
      } else {
        store_link(n, keep_head, stamp);
        keep_head = n;
        if (keep_tail == nullptr) keep_tail = n;
      }
      n = next;
    }
    if (ready_head != nullptr) {
      push_chain(r.ready, ready_head, ready_tail);
      r.reclaimed.add(moved);
    }
    if (keep_head != nullptr) push_chain(r.deferred, keep_head, keep_tail);
    return moved;
  }

  static void push_chain(std::atomic<FreeNode*>& stack, FreeNode* head, FreeNode* tail) noexcept {
    FreeNode* old = stack.load(std::memory_order_relaxed);
    const std::uint64_t tail_stamp = load_epoch(tail);
    do {
      store_link(tail, old, tail_stamp);
    } while (!stack.compare_exchange_weak(old, head, std::memory_order_release, std::memory_order_relaxed));
  }

  // Checked builds: overwrite a reclaimed block (past its link) so that a
  // reader that should still have been protected sees junk, not stale data.
  SYDRA_NO_ASAN static void junk_fill(FreeNode* n, std::size_t size) noexcept {
    track::link_access_begin(n, size);
    auto* bytes = reinterpret_cast<volatile unsigned char*>(n);
    for (std::size_t i = sizeof(FreeNode); i < size; ++i) bytes[i] = 0xDF;
    track::link_access_end(n, size);
  }

  SlabSource& slabs_;
  Shard* shards_ = nullptr;
  std::size_t count_ = 0;
  std::uint64_t id_ = 0;  // 0 never matches a cache: no manager
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> available_{0};
  Counter<true> misses_;
  EpochDomain epochs_;
};

}  // namespace v1
}  // namespace sydra::alloc
