// Remote frees: other threads' frees of a shard's blocks, kept in the
// blocks' own slab (mimalloc's thread_free list; snmalloc batches per slab
// before it sends).
//
//   per slab           thread_free: a stack of blocks that any thread pushes a
//                      batch onto (one compare-exchange), and that only the
//                      owner takes, whole. The word packs the head, the
//                      count of blocks on it and a "queued" bit, so the owner
//                      learns how many blocks came back without walking them.
//   per shard, class   notify: a stack of slabs whose queued bit a publisher
//                      set, so the owner hears of remote frees to a slab it
//                      is not allocating from (a full slab must go back on
//                      its lists; an empty one back to the pool).
//
// The queued bit keeps a slab on its owner's notify stack at most once: a
// publisher that sets it pushes the slab, and only the owner, popping the
// slab, clears it. Taking the blocks leaves the bit alone.
//
// Epochs: each batch raises the slab's thread_free_stamp to its own stamp
// before it is pushed, so the owner, having read the word, knows a stamp no
// older than any batch on it. It takes the blocks only if that stamp is safe
// and no batch came in meanwhile (the compare-exchange of the take fails
// otherwise). The minimum pinned epoch is read after the word: the load
// synchronises with every push it sees, and each push read its stamp after
// its blocks were freed, so any reader pinned before that is visible.
#pragma once

#include <sydra/alloc/epoch/epoch_domain.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

#include <atomic>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// The packed thread_free word. User-space addresses fit in 48 bits (the
// pagemap covers 2^47 bytes), and a slab holds at most 4,096 blocks.
struct ThreadFreeWord {
  static constexpr std::uint64_t head_mask = (std::uint64_t{1} << 48) - 1;
  static constexpr unsigned count_shift = 48;
  static constexpr std::uint64_t queued_bit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t count_mask = (queued_bit - 1) & ~head_mask;

  std::uint64_t w;

  FreeNode* head() const noexcept { return reinterpret_cast<FreeNode*>(w & head_mask); }
  std::uint32_t count() const noexcept { return static_cast<std::uint32_t>((w & count_mask) >> count_shift); }
  bool queued() const noexcept { return (w & queued_bit) != 0; }
  static std::uint64_t pack(FreeNode* head, std::uint32_t count, bool queued) noexcept {
    return reinterpret_cast<std::uintptr_t>(head) | (std::uint64_t{count} << count_shift) | (queued ? queued_bit : 0);
  }
};
static_assert(slab_bytes / 16 < (ThreadFreeWord::count_mask >> ThreadFreeWord::count_shift));

// Per shard and class: the notify stack and the counts snapshots read.
struct alignas(64) RemoteIn {
  std::atomic<SlabMeta*> notify{nullptr};
  Counter<> deferred_count;  // blocks published to this class's slabs, counted before they are pushed
  Counter<> reclaimed;       // of those, taken back by the owner (one writer: the shard's holder)

  bool has_news() const noexcept { return notify.load(std::memory_order_relaxed) != nullptr; }
  // The whole notify stack, for the shard's holder.
  SlabMeta* take_news() noexcept { return notify.exchange(nullptr, std::memory_order_acquire); }
};

template <bool Hardened>
struct RemoteFree {
  using L = Links<Hardened>;

  // Any thread: pushes a chain of `count` blocks of slab m (linked head ->
  // tail) onto its thread_free, and m onto `in`'s notify stack if it was not
  // queued. stamp(): the batch's epoch stamp, read after its blocks were
  // freed (0 when the layer has no epochs).
  static void publish(RemoteIn& in, SlabMeta* m, FreeNode* head, FreeNode* tail, std::uint32_t count,
                      std::uint64_t stamp) noexcept {
    // Counted before it is pushed: once pushed, the owner may count it
    // reclaimed, and reclaimed must never run ahead of deferred.
    in.deferred_count.add(count);
    if (stamp != 0) {
      std::uint64_t s = m->thread_free_stamp.load(std::memory_order_relaxed);
      while (s < stamp &&
             !m->thread_free_stamp.compare_exchange_weak(s, stamp, std::memory_order_relaxed, std::memory_order_relaxed)) {
      }
    }
    ThreadFreeWord old{m->thread_free.load(std::memory_order_relaxed)};
    std::uint64_t now;
    do {
      L::store_next(tail, old.head());
      now = ThreadFreeWord::pack(head, old.count() + count, true);
      // acq_rel: a publisher that finds the queued bit clear must also see
      // the owner done with the slab's notify link (its unqueue released it).
    } while (!m->thread_free.compare_exchange_weak(old.w, now, std::memory_order_acq_rel, std::memory_order_relaxed));
    if (!old.queued()) {
      SlabMeta* top = in.notify.load(std::memory_order_relaxed);
      do {
        m->notify_next = top;
      } while (!in.notify.compare_exchange_weak(top, m, std::memory_order_release, std::memory_order_relaxed));
    }
  }

  // The shard's holder: clears m's queued bit (m was just popped from the
  // notify stack). Returns the word as it left it.
  static ThreadFreeWord unqueue(SlabMeta* m) noexcept {
    ThreadFreeWord w{m->thread_free.load(std::memory_order_acquire)};
    while (!m->thread_free.compare_exchange_weak(w.w, w.w & ~ThreadFreeWord::queued_bit, std::memory_order_acq_rel,
                                                 std::memory_order_acquire)) {
    }
    return ThreadFreeWord{w.w & ~ThreadFreeWord::queued_bit};
  }

  static ThreadFreeWord peek(const SlabMeta* m) noexcept {
    return ThreadFreeWord{m->thread_free.load(std::memory_order_acquire)};
  }

  struct Taken {
    FreeNode* head = nullptr;
    std::uint32_t count = 0;
  };
  // The shard's holder: takes every block on m's thread_free if the epochs
  // allow (safe_below() is read only once the word is), leaving the queued
  // bit as it is. Empty when there is nothing, or nothing safe yet.
  template <class SafeBelow>
  static Taken take(SlabMeta* m, SafeBelow safe_below) noexcept {
    ThreadFreeWord w{m->thread_free.load(std::memory_order_acquire)};
    while (w.count() != 0) {
      const std::uint64_t stamp = m->thread_free_stamp.load(std::memory_order_relaxed);
      if (stamp != 0 && !EpochDomain::reclaimable(stamp, safe_below())) return {};
      const std::uint64_t left = w.w & ThreadFreeWord::queued_bit;
      if (m->thread_free.compare_exchange_weak(w.w, left, std::memory_order_acq_rel, std::memory_order_acquire))
        return {w.head(), w.count()};
    }
    return {};
  }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
