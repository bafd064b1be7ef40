// Shard: one shard's state, and its owner's slabs ("free-list sharding",
// mimalloc's MSR-TR-2019-18).
//
// Per class, the owner keeps
//   head      the current slab and the list of its blocks the fast path pops
//             (moved out of the slab, so a pop reads nothing but the shard)
//   partial   slabs with blocks to hand out (on their own free list, taken
//             back from remote frees, or never carved)
//   waiting   slabs whose only free blocks are remote frees that pinned
//             readers may still see
// and the slabs that are full are on no list. Every slab keeps its own lists:
//   free      the owner's frees of its blocks (the owner's free fast path
//             pushes here: no spill, no refill, ever)
//   rfree     remote frees a collect took back
//   thread_free  other threads' frees (shard/remote_free.hpp)
// and `used`, its blocks that are out of those lists. The moment `used`
// reaches 0 the slab goes back to the pool, for any class of any owner
// (unless it is the class's current slab, which stays as its cache, or the
// class keeps no spare yet: one empty slab each, given back by empty()).
//
// A block moves: carved or taken from a slab's lists into the head as a
// whole list -> handed out by the fast path -> freed onto its slab's `free`
// (owner) or thread_free (anyone else) -> taken into the head again.
//
// Every operation here is the owner's, or that of a thread that holds the
// shard as if it were its owner.
#pragma once

#include <sydra/alloc/cache/remote_cache.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/shard/remote_free.hpp>
#include <sydra/alloc/slab/slab_pool.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// Counted: the policy opted into stats (ShardFeatures::stats). Without it
// the counters below are empty types and the fast path counts nothing.
template <class Ctx, bool Counted = true>
struct alignas(64) Shard {
  using Classes = typename Ctx::Classes;
  using Pool = typename Ctx::Pool;
  using Remote = RemoteCache<Ctx::hardened>;
  using Frees = RemoteFree<Ctx::hardened>;
  using L = Links<Ctx::hardened>;
  // The owner a fork's child gives a shard it cannot trust (see busy).
  static constexpr std::uint64_t abandoned_owner = ~std::uint64_t{0};

  struct alignas(64) Head {  // the fast path's line; counts read by snapshots
    FreeNode* free = nullptr;  // blocks of `cur` to hand out
    SlabMeta* cur = nullptr;
    Counter<Counted> allocs;  // allocations (the fast path's count; also sizes `free`, below)
    Counter<Counted> frees;   // the owner's frees of this shard's blocks
    // `free` held `filled` blocks when allocs was `allocs_at_fill`: its
    // length is filled - (allocs - allocs_at_fill), with no count kept on
    // the fast path beyond allocs.
    std::atomic<std::uint64_t> allocs_at_fill{0};
    std::atomic<std::uint32_t> filled{0};

    std::uint64_t held() const noexcept {
      const std::uint64_t since = allocs.get() - allocs_at_fill.load(std::memory_order_relaxed);
      const std::uint64_t f = filled.load(std::memory_order_relaxed);
      return f > since ? f - since : 0;
    }
  };
  struct SlabList {  // first in, first out: a slab waits its turn while frees come back to it
    SlabMeta* head = nullptr;
    SlabMeta* tail = nullptr;
  };
  struct Lists {  // the owner's slabs of one class, beyond the current one
    SlabList partial;
    SlabList waiting;
    // One empty slab kept back from the pool: a class whose slabs empty
    // and fill in turn (large blocks, a few to a slab) would otherwise pay
    // the pool's lock twice per slab. Given back by empty().
    SlabMeta* spare = nullptr;
  };

  explicit constexpr Shard(std::uint32_t i) noexcept : index(i) {}

  // Brackets a change of the owner's lists (see busy). The fence keeps the
  // flag's store ahead of the list stores it guards, as a fork sees them.
  class BusyScope {
   public:
    explicit BusyScope(Shard& s) noexcept : s_(s) {
      s_.busy.store(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
    }
    ~BusyScope() { s_.busy.store(0, std::memory_order_release); }
    BusyScope(const BusyScope&) = delete;
    BusyScope& operator=(const BusyScope&) = delete;

   private:
    Shard& s_;
  };
  bool caught_busy() const noexcept { return busy.load(std::memory_order_acquire) != 0; }

  std::array<Head, Classes::count> head{};
  std::array<Lists, Classes::count> lists{};
  std::array<std::atomic<std::uint64_t>, Classes::count> slab_count{};
  Remote remote;
  std::array<Counter<Counted>, Classes::count> remote_out{};  // the owner's frees of other shards' blocks
  std::array<Counter<Counted>, Classes::count> published{};   // of those, published to their owners
  std::uint32_t index;
  std::uint32_t carve_bytes = 4096;  // how much of a fresh slab one fill carves
  static constexpr std::uint32_t min_carve = 16;
  // Set while the owner changes its lists in more than one store (a fill, a
  // slow free, a remote batch, emptying the shard). A fork's child finds a
  // departed owner's shard in whatever state the fork caught it: with this
  // flag up the lists may be half-changed, and the child abandons the shard
  // (its blocks stay out; nothing is corrupted) instead of emptying it.
  std::atomic<std::uint32_t> busy{0};
  alignas(64) std::atomic<std::uint64_t> owner_thread{0};  // 0: free to take; abandoned_owner: never again
  std::array<RemoteIn, Classes::count> in{};                 // pushed by any thread

  // ---- The fast path: pop from the head, push onto the block's slab -----------
  // False when the head is empty (out is then untouched).
  SYDRA_FAST_PATH bool pop(unsigned cls, void*& out) noexcept {
    Head& h = head[cls];
    FreeNode* p = h.free;
    if (SYDRA_UNLIKELY(p == nullptr)) return false;
    h.free = L::load_next(p);
    h.allocs.bump();
    track::on_hand_out(p, Classes::sizes[cls]);
    out = p;
    return true;
  }
  // The owner's free of a block of its slab m that stays in use and on its
  // lists. False (nothing done) when the free would empty the slab or must
  // put it back on a list: the slow path's.
  SYDRA_FAST_PATH bool push(SlabMeta* m, unsigned cls, void* p) noexcept {
    const std::uint32_t used = m->used.load(std::memory_order_relaxed);
    if (SYDRA_UNLIKELY(used <= 1 || m->state < ShardSlab::partial)) return false;
    track::on_take_back(p, Classes::sizes[cls]);
    auto* f = static_cast<FreeNode*>(p);
    L::store_next(f, m->free);
    m->free = f;
    m->used.store(used - 1, std::memory_order_relaxed);
    head[cls].frees.bump();
    return true;
  }
  // ---- End of the fast path ----------------------------------------------------

  // The head ran dry: news from other threads first, then the current slab's
  // lists, then another slab's, then a new slab. Hands out a block; nullptr:
  // out of memory. safe_below(): the epoch below which remote frees are safe.
  template <class SafeBelow>
  void* refill(Pool& pool, unsigned cls, SafeBelow safe_below) noexcept {
    if (in[cls].has_news()) take_news(pool, cls, safe_below);
    Head& h = head[cls];
    bool rotated = false;
    for (;;) {
      if (SlabMeta* m = h.cur) {
        // A current slab that got few blocks back since its last fill waits
        // at the partial list's end, and the slab at its head, which has had
        // longest to gather frees, goes first: fewer, larger fills.
        const std::uint32_t used = m->used.load(std::memory_order_relaxed);
        if (!rotated && lists[cls].partial.head != nullptr && m->rfree == nullptr && used != 0 &&
            m->carved - used < min_carve) {
          rotated = true;
          h.cur = nullptr;
          h.filled.store(0, std::memory_order_relaxed);
          link(cls, m, ShardSlab::partial);
        } else if (fill(cls, m, safe_below)) {
          break;
        } else {
          retire_current(cls);
        }
      }
      SlabMeta* m = next_slab(pool, cls, safe_below);
      if (m == nullptr) return nullptr;  // out of memory: the handle tries the buckets, then the fallback
      m->state = ShardSlab::current;
      h.cur = m;
    }
    void* p = nullptr;
    pop(cls, p);
    return p;
  }

  // The owner's free the fast path declined: the slab empties, or comes back
  // on a list.
  void free_own(Pool& pool, SlabMeta* m, unsigned cls, void* p) noexcept {
    track::on_take_back(p, Classes::sizes[cls]);
    auto* f = static_cast<FreeNode*>(p);
    L::store_next(f, m->free);
    m->free = f;
    const std::uint32_t used = m->used.load(std::memory_order_relaxed) - 1;
    m->used.store(used, std::memory_order_relaxed);
    head[cls].frees.bump();
    if (used == 0 && m->state != ShardSlab::current) return release_if_quiet(pool, cls, m);
    if (m->state < ShardSlab::partial) {
      unlink(cls, m);
      link(cls, m, ShardSlab::partial);
    }
  }

  // Reads the news: each slab some thread queued is unqueued; a full slab
  // goes back on the partial list, an empty one (every block out of it came
  // back remotely, and no reader can see them) back to the pool.
  // Returns the remote frees it took back.
  template <class SafeBelow>
  std::size_t take_news(Pool& pool, unsigned cls, SafeBelow safe_below) noexcept {
    std::size_t taken = 0;
    for (SlabMeta* m = in[cls].take_news(); m != nullptr;) {
      SlabMeta* next = m->notify_next;
      const ThreadFreeWord w = Frees::unqueue(m);
      if (m->state == ShardSlab::current) {
        // The next fill takes its blocks.
      } else if (w.count() == m->used.load(std::memory_order_relaxed)) {
        const typename Frees::Taken t = Frees::take(m, safe_below);
        keep_taken(cls, m, t);
        taken += t.count;
        if (m->used.load(std::memory_order_relaxed) == 0) release_if_quiet(pool, cls, m);
        else if (m->state == ShardSlab::full) link(cls, m, ShardSlab::waiting);
      } else if (m->state == ShardSlab::full) {
        link(cls, m, ShardSlab::partial);
      }
      m = next;
    }
    return taken;
  }

  // A collect: every slab's remote frees that no reader can see move to the
  // slab's rfree, counted reclaimed; slabs they empty go back to the pool.
  // Returns the blocks taken.
  template <class SafeBelow>
  std::size_t reclaim(Pool& pool, unsigned cls, SafeBelow safe_below) noexcept {
    std::size_t n = take_news(pool, cls, safe_below);
    if (SlabMeta* m = head[cls].cur) n += reclaim_slab(pool, cls, m, safe_below);
    for (SlabList* list : {&lists[cls].partial, &lists[cls].waiting})
      for (SlabMeta* m = list->head; m != nullptr;) {
        SlabMeta* next = m->next;
        n += reclaim_slab(pool, cls, m, safe_below);
        m = next;
      }
    return n;
  }

  // Everything the head holds goes back to its slab, and the slab leaves the
  // head: for a thread's exit, trim(), and before the shard changes hands.
  template <class SafeBelow>
  void empty(Pool& pool, unsigned cls, SafeBelow safe_below) noexcept {
    take_news(pool, cls, safe_below);
    give_back_head(pool, cls);
    if (SlabMeta* m = lists[cls].spare) {  // last: giving the head back may have emptied a slab
      lists[cls].spare = nullptr;
      note_slabs(cls, -1);
      pool.release(m);
    }
  }

  std::uint64_t slabs(unsigned cls) const noexcept { return slab_count[cls].load(std::memory_order_relaxed); }

 private:
  void give_back_head(Pool& pool, unsigned cls) noexcept {
    Head& h = head[cls];
    SlabMeta* m = h.cur;
    if (m == nullptr) return;
    std::uint32_t n = 0;
    FreeNode* tail = nullptr;
    for (FreeNode* f = h.free; f != nullptr; f = L::load_next(f)) {
      tail = f;
      ++n;
    }
    if (tail != nullptr) {
      L::store_next(tail, m->free);
      m->free = h.free;
    }
    h.free = nullptr;
    h.filled.store(0, std::memory_order_relaxed);
    h.cur = nullptr;
    m->used.store(m->used.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
    m->state = ShardSlab::full;
    if (m->used.load(std::memory_order_relaxed) == 0) return release_if_quiet(pool, cls, m);
    link(cls, m, ShardSlab::partial);
  }

  // Fills the head from slab m: its own frees, then reclaimed remote frees,
  // then its thread_free, then its untouched tail. False: nothing to take.
  template <class SafeBelow>
  bool fill(unsigned cls, SlabMeta* m, SafeBelow safe_below) noexcept {
    Head& h = head[cls];
    FreeNode* list = nullptr;
    std::uint32_t n = 0;
    const std::uint32_t used = m->used.load(std::memory_order_relaxed);
    if (m->free != nullptr) {
      list = m->free;
      n = m->carved - used - m->nrfree;
      m->free = nullptr;
      m->used.store(used + n, std::memory_order_relaxed);
    } else if (m->rfree != nullptr) {
      list = m->rfree;
      n = m->nrfree;
      m->rfree = nullptr;
      m->nrfree = 0;
      m->used.store(used + n, std::memory_order_relaxed);
    } else if (const typename Frees::Taken t = Frees::take(m, safe_below); t.count != 0) {
      list = t.head;  // its blocks were out already: used stays
      n = t.count;
      in[cls].reclaimed.bump(n);
    } else if (m->carved < m->capacity) {
      // carve_bytes, but at least min_carve blocks: a large class would
      // otherwise come back here for every block.
      n = std::min<std::uint32_t>(m->capacity - m->carved, std::max<std::uint32_t>(carve_bytes / m->block_size, min_carve));
      char* first = m->base + std::size_t{m->carved} * m->block_size;
      for (std::uint32_t i = n; i-- > 0;) {  // linked so that the pops go up through the slab
        auto* f = reinterpret_cast<FreeNode*>(first + std::size_t{i} * m->block_size);
        L::store_next(f, list);
        list = f;
      }
      m->carved = static_cast<std::uint16_t>(m->carved + n);
      m->used.store(used + n, std::memory_order_relaxed);
    } else {
      return false;
    }
    h.free = list;
    h.allocs_at_fill.store(h.allocs.get(), std::memory_order_relaxed);
    h.filled.store(n, std::memory_order_relaxed);
    return true;
  }

  // The current slab has nothing left to hand out: full, or waiting for its
  // remote frees to become safe.
  void retire_current(unsigned cls) noexcept {
    Head& h = head[cls];
    SlabMeta* m = h.cur;
    h.cur = nullptr;
    h.filled.store(0, std::memory_order_relaxed);
    m->state = ShardSlab::full;
    if (Frees::peek(m).count() != 0) link(cls, m, ShardSlab::waiting);
  }

  // A slab to allocate from: the partial list's first, a waiting slab whose
  // remote frees are now safe, or a new one.
  template <class SafeBelow>
  SlabMeta* next_slab(Pool& pool, unsigned cls, SafeBelow safe_below) noexcept {
    if (SlabMeta* m = lists[cls].partial.head) {
      unlink(cls, m);
      return m;
    }
    if (lists[cls].waiting.head != nullptr) {
      const std::uint64_t below = safe_below();
      for (SlabMeta* m = lists[cls].waiting.head; m != nullptr; m = m->next) {
        if (EpochDomain::reclaimable(m->thread_free_stamp.load(std::memory_order_relaxed), below)) {
          unlink(cls, m);
          return m;
        }
      }
    }
    if (SlabMeta* m = lists[cls].spare) {
      lists[cls].spare = nullptr;
      return m;
    }
    SlabMeta* m = pool.acquire(SlabKind::shard, this, cls, static_cast<std::uint32_t>(Classes::sizes[cls]));
    if (m != nullptr) note_slabs(cls, +1);
    return m;
  }

  template <class SafeBelow>
  std::size_t reclaim_slab(Pool& pool, unsigned cls, SlabMeta* m, SafeBelow safe_below) noexcept {
    const typename Frees::Taken t = Frees::take(m, safe_below);
    if (t.count == 0) return 0;
    keep_taken(cls, m, t);
    if (m->used.load(std::memory_order_relaxed) == 0 && m->state != ShardSlab::current) {
      release_if_quiet(pool, cls, m);
      return t.count;
    }
    if (m->state == ShardSlab::waiting) {
      unlink(cls, m);
      link(cls, m, ShardSlab::partial);
    }
    return t.count;
  }

  // Remote frees taken from m's thread_free join its rfree, counted
  // reclaimed: always, even when m is about to empty, because an empty slab
  // may stay (the spare, or still queued) and must keep every block it has.
  void keep_taken(unsigned cls, SlabMeta* m, const typename Frees::Taken& t) noexcept {
    if (t.count == 0) return;
    in[cls].reclaimed.bump(t.count);
    m->used.store(m->used.load(std::memory_order_relaxed) - t.count, std::memory_order_relaxed);
    if (m->rfree != nullptr) {  // rarely: a collect took the last ones, and fills take rfree whole
      FreeNode* tail = t.head;
      for (FreeNode* next = L::load_next(tail); next != nullptr; next = L::load_next(tail)) tail = next;
      L::store_next(tail, m->rfree);
    }
    m->rfree = t.head;
    m->nrfree = static_cast<std::uint16_t>(m->nrfree + t.count);
  }

  // An empty slab goes back to the pool, unless it is still on the notify
  // stack (its queued bit is set): the news will release it then, and a
  // slab must not change hands while a publisher may still push it.
  void release_if_quiet(Pool& pool, unsigned cls, SlabMeta* m) noexcept {
    if (Frees::peek(m).queued()) {
      if (m->state < ShardSlab::partial) {  // kept where the news finds it
        unlink(cls, m);
        link(cls, m, ShardSlab::partial);
      }
      return;
    }
    unlink(cls, m);
    if (lists[cls].spare == nullptr) {
      lists[cls].spare = m;
      return;
    }
    note_slabs(cls, -1);
    pool.release(m);
  }

  // Onto the end of the list its new state names.
  void link(unsigned cls, SlabMeta* m, ShardSlab state) noexcept {
    SlabList& list = state == ShardSlab::partial ? lists[cls].partial : lists[cls].waiting;
    m->next = nullptr;
    m->prev = list.tail;
    if (list.tail != nullptr) list.tail->next = m;
    else list.head = m;
    list.tail = m;
    m->state = state;
  }
  // Off whichever list m is on (none for full and current slabs).
  void unlink(unsigned cls, SlabMeta* m) noexcept {
    if (m->state == ShardSlab::partial || m->state == ShardSlab::waiting) {
      SlabList& list = m->state == ShardSlab::partial ? lists[cls].partial : lists[cls].waiting;
      if (m->prev != nullptr) m->prev->next = m->next;
      else list.head = m->next;
      if (m->next != nullptr) m->next->prev = m->prev;
      else list.tail = m->prev;
      m->prev = m->next = nullptr;
    }
    m->state = ShardSlab::full;
  }

  void note_slabs(unsigned cls, int delta) noexcept {
    slab_count[cls].store(slab_count[cls].load(std::memory_order_relaxed) + static_cast<std::uint64_t>(delta),
                          std::memory_order_relaxed);
  }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
