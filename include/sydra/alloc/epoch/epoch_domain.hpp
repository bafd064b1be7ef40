// EpochDomain: epoch-based reclamation, done as crossbeam and liburcu do it
// rather than as the seed did (one thread_epoch per shard, last writer wins).
//
// - One global epoch, starting at 1.
// - One slot per participating thread; a slot holds the epoch the thread is
//   pinned at, or 0 when it is not pinned. Slots are claimed on first use,
//   released when the thread exits, and reused; they are never unlinked, so a
//   scan can walk them without locks.
// - A block freed or retired at epoch e may be handed out again only once no
//   thread is pinned at an epoch <= e: reclaimable(e) is e < min_pinned().
// - advance() moves the epoch only when every pinned thread has seen it.
//
// All epoch loads and pin stores are seq_cst: a pin must be ordered before the
// reader's loads of the shared structure, and a collector's scan after the
// unlink that preceded the retire. (Fences would do on x86, but TSan does not
// model fences; crossbeam makes the same trade.)
#pragma once

#include <sydra/alloc/allocator.hpp>

#include <atomic>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

class EpochDomain {
 public:
  static constexpr std::uint64_t unpinned = 0;
  static constexpr std::uint64_t nobody_pinned = std::numeric_limits<std::uint64_t>::max();

  struct alignas(64) Slot {
    std::atomic<std::uint64_t> pinned{unpinned};
    std::atomic<bool> claimed{true};
    Slot* next = nullptr;
    std::uint32_t depth = 0;  // nesting of enter/leave; touched only by the claiming thread
  };

  explicit EpochDomain(Allocator backing) noexcept : backing_(backing) {}
  EpochDomain(const EpochDomain&) = delete;
  EpochDomain& operator=(const EpochDomain&) = delete;
  ~EpochDomain() {
    for (Slot* s = slots_.load(std::memory_order_acquire); s != nullptr;) {
      Slot* next = s->next;
      s->~Slot();
      backing_.free(s, sizeof(Slot), alignof(Slot));
      s = next;
    }
  }

  std::uint64_t current() const noexcept { return global_.load(std::memory_order_seq_cst); }

  // A free slot for the calling thread, or nullptr when memory is short.
  Slot* claim_slot() noexcept {
    for (Slot* s = slots_.load(std::memory_order_acquire); s != nullptr; s = s->next) {
      bool expected = false;
      if (!s->claimed.load(std::memory_order_relaxed) &&
          s->claimed.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
        s->depth = 0;
        return s;
      }
    }
    void* mem = backing_.alloc(sizeof(Slot), alignof(Slot));
    if (mem == nullptr) return nullptr;
    Slot* s = ::new (mem) Slot{};
    Slot* head = slots_.load(std::memory_order_relaxed);
    do {
      s->next = head;
    } while (!slots_.compare_exchange_weak(head, s, std::memory_order_release, std::memory_order_relaxed));
    return s;
  }

  void release_slot(Slot* s) noexcept {
    s->depth = 0;
    s->pinned.store(unpinned, std::memory_order_release);
    s->claimed.store(false, std::memory_order_release);
  }

  // Pins the slot's thread at the current epoch; nested pins keep the outer one.
  std::uint64_t pin(Slot& s) noexcept {
    if (s.depth++ > 0) return s.pinned.load(std::memory_order_relaxed);
    std::uint64_t e = global_.load(std::memory_order_seq_cst);
    for (;;) {
      s.pinned.store(e, std::memory_order_seq_cst);
      const std::uint64_t again = global_.load(std::memory_order_seq_cst);
      if (again == e) return e;
      e = again;  // the epoch moved between the load and the store: pin the newer one
    }
  }

  // False when the slot was not pinned (an unmatched leave).
  bool unpin(Slot& s) noexcept {
    if (s.depth == 0) return false;
    if (--s.depth == 0) s.pinned.store(unpinned, std::memory_order_seq_cst);
    return true;
  }

  // The smallest epoch any thread is pinned at, or nobody_pinned.
  std::uint64_t min_pinned() const noexcept {
    std::uint64_t m = nobody_pinned;
    for (Slot* s = slots_.load(std::memory_order_acquire); s != nullptr; s = s->next) {
      const std::uint64_t p = s->pinned.load(std::memory_order_seq_cst);
      if (p != unpinned && p < m) m = p;
    }
    return m;
  }

  std::uint64_t pinned_count() const noexcept {
    std::uint64_t n = 0;
    for (Slot* s = slots_.load(std::memory_order_acquire); s != nullptr; s = s->next)
      n += s->pinned.load(std::memory_order_relaxed) != unpinned;
    return n;
  }

  static bool reclaimable(std::uint64_t stamp, std::uint64_t min_pinned_epoch) noexcept {
    return stamp < min_pinned_epoch;
  }

  // Moves the epoch forward by one if every pinned thread has seen the
  // current one; returns the epoch in force afterwards either way.
  std::uint64_t advance() noexcept {
    std::uint64_t e = global_.load(std::memory_order_seq_cst);
    if (min_pinned() < e) return e;
    global_.compare_exchange_strong(e, e + 1, std::memory_order_seq_cst);
    return global_.load(std::memory_order_seq_cst);
  }

 private:
  alignas(64) std::atomic<std::uint64_t> global_{1};
  std::atomic<Slot*> slots_{nullptr};
  Allocator backing_;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
