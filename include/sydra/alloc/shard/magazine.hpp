// Shard: one shard's state, and its owner's lists.
//
// Per class, the owner keeps
//   magazine   a small stack of free blocks: the fast path pops and pushes
//              here, owner only, no atomic read-modify-write
//   slabs      the shard's slabs with their own free lists; half a magazine
//              moves to or from them at a time; an emptied slab goes back to
//              the pool for any class
// and the shard also holds what the other concerns keep per shard: the
// owner's batches of remote frees (cache/remote_cache.hpp) and the inboxes
// other threads publish frees to (shard/inbox.hpp). Every operation here is
// the owner's (or a thread that holds the shard as if it were its owner).
#pragma once

#include <sydra/alloc/cache/remote_cache.hpp>
#include <sydra/alloc/detail/count_and_pops.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/shard/inbox.hpp>
#include <sydra/alloc/slab/class_slabs.hpp>

#include <array>
#include <atomic>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <class Ctx>
struct alignas(64) Shard {
  using Classes = typename Ctx::Classes;
  using Pool = typename Ctx::Pool;
  using Remote = RemoteCache<Ctx::hardened>;
  using L = Links<Ctx::hardened>;
  static constexpr std::uint32_t max_magazine = 64;
  // The owner a fork's child gives a shard it cannot trust (see busy).
  static constexpr std::uint64_t abandoned_owner = ~std::uint64_t{0};

  struct Magazine {  // a magazine's counts: owner-written, read by snapshots
    detail::CountAndPopsWord word;  // blocks held, and allocations
    Counter<> frees;                // the owner's frees of this shard's blocks
    std::uint32_t cap = 0;
  };

  explicit Shard(std::uint32_t i) noexcept : index(i) {}

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

  std::array<Magazine, Classes::count> mag{};
  std::array<std::array<void*, max_magazine>, Classes::count> slots;  // the magazines' blocks, owner only
  std::array<ClassSlabs<Ctx::hardened>, Classes::count> slabs{};
  std::array<std::atomic<std::uint64_t>, Classes::count> slab_count{};
  Remote remote;
  std::array<Counter<>, Classes::count> remote_out{};  // the owner's frees of other shards' blocks
  std::array<Counter<>, Classes::count> published{};   // of those, published to their owners
  std::uint32_t index;
  // Set while the owner changes its lists in more than one store (a refill,
  // a spill, a remote batch, emptying the shard). A fork's child finds a
  // departed owner's shard in whatever state the fork caught it: with this
  // flag up the lists may be half-changed, and the child abandons the shard
  // (its blocks stay out; nothing is corrupted) instead of emptying it. The
  // fast path's pop and push commit with one store of the magazine word and
  // need no flag.
  std::atomic<std::uint32_t> busy{0};
  alignas(64) std::atomic<std::uint64_t> owner_thread{0};  // 0: free to take; abandoned_owner: never again
  std::array<Inbox<Ctx::hardened>, Classes::count> inbox{};

  // ---- The fast path: a magazine's pop and push ---------------------------------
  // False when the magazine is empty (out is then untouched).
  SYDRA_FAST_PATH bool pop(unsigned cls, void*& out) noexcept {
    Magazine& m = mag[cls];
    const detail::CountAndPops w = m.word.load(std::memory_order_relaxed);
    const std::uint32_t n = w.count();
    if (SYDRA_UNLIKELY(n == 0)) return false;
    out = slots[cls][n - 1];
    m.word.store(w.after_pop(), std::memory_order_relaxed);
    track::on_hand_out(out, Classes::sizes[cls]);
    return true;
  }
  // False when the magazine is full (nothing done).
  SYDRA_FAST_PATH bool push(unsigned cls, void* p) noexcept {
    Magazine& m = mag[cls];
    const detail::CountAndPops w = m.word.load(std::memory_order_relaxed);
    const std::uint32_t n = w.count();
    if (SYDRA_UNLIKELY(n >= m.cap)) return false;
    track::on_take_back(p, Classes::sizes[cls]);
    slots[cls][n] = p;
    m.word.store(w.after_push(), std::memory_order_relaxed);
    m.frees.bump();
    return true;
  }
  // ---- End of the fast path ----------------------------------------------------

  // Hands out the magazine's top block, first filling an empty magazine from
  // the slabs (`batch` blocks). nullptr: out of memory.
  void* refill(Pool& pool, unsigned cls, std::uint32_t batch) noexcept {
    Magazine& m = mag[cls];
    detail::CountAndPops w = m.word.load(std::memory_order_relaxed);
    if (w.count() == 0) {
      const unsigned n = slabs[cls].take(pool, identity(cls), batch, slots[cls].data());
      note_slabs(cls);
      if (n == 0) return nullptr;  // out of memory: the handle tries the buckets, then the fallback
      w = w.after_push(n);
    }
    void* p = slots[cls][w.count() - 1];
    m.word.store(w.after_pop(), std::memory_order_relaxed);
    track::on_hand_out(p, Classes::sizes[cls]);
    return p;
  }

  // Moves the inbox's ready list into the magazine (the rest to the slabs).
  unsigned take_ready(Pool& pool, unsigned cls) noexcept {
    FreeNode* n = inbox[cls].take_ready();
    if (n == nullptr) return 0;
    Magazine& m = mag[cls];
    detail::CountAndPops w = m.word.load(std::memory_order_relaxed);
    unsigned moved = 0;
    while (n != nullptr) {
      FreeNode* next = L::load_next(n);
      if (w.count() < m.cap) {
        slots[cls][w.count()] = n;
        w = w.after_push();
      } else {
        slabs[cls].give(pool, Pagemap::lookup(n), n);
      }
      ++moved;
      n = next;
    }
    m.word.store(w, std::memory_order_relaxed);
    note_slabs(cls);
    return moved;
  }

  // The owner's free the fast path did not take: a full magazine first gives
  // `batch` blocks back to the slabs.
  void free_own(Pool& pool, unsigned cls, void* p, std::uint32_t batch) noexcept {
    Magazine& m = mag[cls];
    if (m.word.load(std::memory_order_relaxed).count() >= m.cap) spill(pool, cls, batch);
    const detail::CountAndPops w = m.word.load(std::memory_order_relaxed);
    slots[cls][w.count()] = p;
    m.word.store(w.after_push(), std::memory_order_relaxed);
    m.frees.bump();
  }

  // Gives `n` blocks from the top of a magazine back to their slabs.
  void spill(Pool& pool, unsigned cls, std::uint32_t n) noexcept {
    Magazine& m = mag[cls];
    detail::CountAndPops w = m.word.load(std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < n && w.count() != 0; ++i) {
      void* q = slots[cls][w.count() - 1];
      w = w.after_take();
      slabs[cls].give(pool, Pagemap::lookup(q), q);
    }
    m.word.store(w, std::memory_order_relaxed);
    note_slabs(cls);
  }

 private:
  SlabIdentity identity(unsigned cls) noexcept { return {SlabKind::shard, this, cls, Classes::sizes[cls]}; }
  void note_slabs(unsigned cls) noexcept {
    slab_count[cls].store(slabs[cls].slabs(), std::memory_order_relaxed);
  }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
