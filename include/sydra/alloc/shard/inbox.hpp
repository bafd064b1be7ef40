// Inbox: the receiving side of remote frees, one per shard and class.
//
//   deferred   a lock-free stack that other threads push batches of frees
//              onto, each stamped with the epoch it was published in
//   ready      deferred blocks a collector found reclaimable; the owner takes
//              the whole list when its magazine runs dry
// Stacks are only ever taken whole (exchange), so no node is popped twice and
// there is no ABA.
//
// The epochs are the caller's: it says, through a callable, what stamp a
// batch gets and below which stamp a batch is safe, and the inbox asks at the
// moment the order of operations requires.
#pragma once

#include <sydra/alloc/epoch/epoch_domain.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/slab/sanitizer.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <bool Hardened>
struct alignas(64) Inbox {  // pushed by any thread
  using L = Links<Hardened>;

  std::atomic<FreeNode*> deferred{nullptr};
  std::atomic<FreeNode*> ready{nullptr};
  Counter<> deferred_count;  // blocks published to this class, counted before they are pushed
  Counter<> reclaimed;       // of those, found reclaimable by a collector

  // Pushes a chain of `count` blocks onto the deferred stack, its first block
  // stamped with stamp().
  template <class Stamp>
  void publish(FreeNode* head, FreeNode* tail, std::uint32_t count, Stamp stamp) noexcept {
    // Counted before it is published: once pushed, a collector may count it
    // reclaimed, and reclaimed must never run ahead of deferred.
    deferred_count.add(count);
    L::store_link(head, head == tail ? nullptr : L::load_next(head), stamp());
    push_chain(deferred, head, tail);
  }

  // The whole ready list, for the owner.
  FreeNode* take_ready() noexcept { return ready.exchange(nullptr, std::memory_order_acquire); }
  bool has_deferred() const noexcept { return deferred.load(std::memory_order_relaxed) != nullptr; }

  // Takes the whole deferred stack, moves the batches that no pinned reader
  // can still see to `ready`, and pushes the rest back in order. Any thread
  // may run it. Returns the blocks made ready.
  //
  // The minimum pinned epoch (safe_below()) is read only after the stack is
  // taken. The exchange synchronises with every push in it, and each push
  // read its stamp after its blocks were freed, so any reader pinned before
  // that is visible to this scan. Read before the exchange, a reader that
  // pinned in between would be missed and its block handed out under it.
  template <class SafeBelow>
  std::size_t collect(std::size_t block_size, SafeBelow safe_below) noexcept {
    FreeNode* all = deferred.exchange(nullptr, std::memory_order_acquire);
    if (all == nullptr) return 0;
    const std::uint64_t below = safe_below();
    FreeNode *ready_head = nullptr, *ready_tail = nullptr, *keep_head = nullptr, *keep_tail = nullptr;
    std::size_t moved = 0;
    bool reclaim = false;
    for (FreeNode* n = all; n != nullptr;) {
      FreeNode* next = L::load_next(n);
      const std::uint64_t stamp = L::load_epoch(n);
      if (stamp != 0) reclaim = EpochDomain::reclaimable(stamp, below);  // a batch's first block
      FreeNode*& head = reclaim ? ready_head : keep_head;
      FreeNode*& tail = reclaim ? ready_tail : keep_tail;
      if (reclaim) {
        if constexpr (checked) junk_fill(n, block_size);
        ++moved;
      }
      if (tail != nullptr) L::store_next(tail, n);
      else head = n;
      tail = n;
      n = next;
    }
    if (ready_head != nullptr) {
      L::store_next(ready_tail, nullptr);
      push_chain(ready, ready_head, ready_tail);
      reclaimed.add(moved);
    }
    if (keep_head != nullptr) push_chain(deferred, keep_head, keep_tail);
    return moved;
  }

 private:
  static void push_chain(std::atomic<FreeNode*>& stack, FreeNode* head, FreeNode* tail) noexcept {
    FreeNode* old = stack.load(std::memory_order_relaxed);
    do {
      L::store_next(tail, old);
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
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
