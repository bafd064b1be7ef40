// RetireBags: retire() at the cost of an array append, as crossbeam's bags do.
//
// A thread retires into its own bag (64 entries, no lock, no atomic
// read-modify-write). A full bag is sealed with the current epoch and pushed
// onto the handle's list of sealed bags in one compare-exchange; the sealing
// thread then tries to advance the epoch and reclaims every sealed bag whose
// epoch is below the minimum pinned epoch, so garbage stays bounded even if
// nobody calls collect_garbage(): at most one open bag per thread, plus the
// sealed bags a pinned reader still holds back (see docs/architecture.md).
// A bag's blocks are freed through the handle's ordinary free, and the empty
// bag is kept for the next seal.
//
// Why a side bag and not a link in the block: a retired block may still be
// read by pinned readers, including whatever pointers sit in its first bytes,
// so nothing is written into it until it is reclaimed.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/epoch/epoch_domain.hpp>

#include <atomic>
#include <bit>
#include <cstdint>
#include <mutex>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

class RetireBags {
 public:
  static constexpr std::uint32_t bag_capacity = 64;

  struct Bag {
    Bag* next = nullptr;
    std::uint64_t epoch = 0;  // set when sealed
    std::uint32_t count = 0;
    struct Entry {
      void* mem;
      std::uint64_t len_log2_align;  // len in the low 56 bits, log2(align) in the top 8
    } entries[bag_capacity];
  };
  using FreeFn = void (*)(void* ctx, void* mem, std::size_t len, std::size_t align) noexcept;

  RetireBags(EpochDomain& epochs, Allocator backing, FreeFn free_fn, void* ctx) noexcept
      : epochs_(epochs), backing_(backing), free_fn_(free_fn), ctx_(ctx) {}
  RetireBags(const RetireBags&) = delete;
  RetireBags& operator=(const RetireBags&) = delete;
  ~RetireBags() {
    reclaim_all();
    for (Bag* b = spare_; b != nullptr;) {
      Bag* next = b->next;
      b->~Bag();
      backing_.free(b, sizeof(Bag), alignof(Bag));
      b = next;
    }
  }

  // Appends to the thread's bag (`mine`, kept in its binding). False only
  // when no bag could be allocated: the block is then untouched.
  // Precondition: len <= 2^56, align a power of two.
  bool retire(Bag*& mine, void* mem, std::size_t len, std::size_t align) noexcept {
    if (SYDRA_UNLIKELY(mine == nullptr || mine->count == bag_capacity)) {
      if (mine != nullptr) seal(mine);
      mine = fresh_bag();
      if (mine == nullptr) return false;
    }
    mine->entries[mine->count++] = {mem, len | (std::uint64_t{static_cast<unsigned>(std::countr_zero(align))} << 56)};
    return true;
  }

  // Seals the thread's bag (if it holds anything) and collects what the
  // epochs allow. Used when a bag fills, and by collect_garbage() for the
  // calling thread.
  void seal(Bag*& mine) noexcept {
    if (seal_only(mine)) {
      epochs_.advance();
      collect();
    }
  }
  // Seals without collecting: frees nothing, so it is safe where the handle's
  // own free may not run (a thread's exit hook, under the registry lock).
  // True if a bag was sealed.
  bool seal_only(Bag*& mine) noexcept {
    if (mine == nullptr) return false;
    const bool sealed = mine->count != 0;
    if (!sealed) {
      give_spare(mine);
    } else {
      sealed_count_.fetch_add(mine->count, std::memory_order_relaxed);
      mine->epoch = epochs_.current();
      Bag* head = sealed_.load(std::memory_order_relaxed);
      do {
        mine->next = head;
      } while (!sealed_.compare_exchange_weak(head, mine, std::memory_order_release, std::memory_order_relaxed));
    }
    mine = nullptr;
    return sealed;
  }

  // Frees the blocks of every sealed bag the epoch invariant allows. Safe from
  // any thread. Returns the blocks freed.
  std::size_t collect() noexcept { return drain(false); }
  // Frees every sealed bag's blocks, pinned readers or not: the handle is
  // being destroyed.
  std::size_t reclaim_all() noexcept { return drain(true); }

  // Blocks in sealed bags (reclaimed or not) and blocks reclaimed.
  std::uint64_t sealed_blocks() const noexcept { return sealed_count_.load(std::memory_order_acquire); }
  std::uint64_t reclaimed_blocks() const noexcept { return reclaimed_.load(std::memory_order_acquire); }

 private:
  std::size_t drain(bool everything) noexcept {
    Bag* all = sealed_.exchange(nullptr, std::memory_order_acquire);
    if (all == nullptr) return 0;
    // After the exchange: every pin that came before these retires is then
    // visible to the scan (the same argument as for deferred frees).
    const std::uint64_t safe_below = everything ? EpochDomain::nobody_pinned : epochs_.min_pinned();
    std::size_t freed = 0;
    Bag* keep = nullptr;
    while (all != nullptr) {
      Bag* next = all->next;
      if (EpochDomain::reclaimable(all->epoch, safe_below)) {
        for (std::uint32_t i = 0; i < all->count; ++i) {
          const auto& e = all->entries[i];
          free_fn_(ctx_, e.mem, e.len_log2_align & ((std::uint64_t{1} << 56) - 1),
                   std::size_t{1} << (e.len_log2_align >> 56));
        }
        freed += all->count;
        give_spare(all);
      } else {
        all->next = keep;
        keep = all;
      }
      all = next;
    }
    if (freed != 0) reclaimed_.fetch_add(freed, std::memory_order_acq_rel);
    while (keep != nullptr) {  // bags still held back by a reader go back on the list
      Bag* next = keep->next;
      Bag* head = sealed_.load(std::memory_order_relaxed);
      do {
        keep->next = head;
      } while (!sealed_.compare_exchange_weak(head, keep, std::memory_order_release, std::memory_order_relaxed));
      keep = next;
    }
    return freed;
  }

  Bag* fresh_bag() noexcept {
    {
      std::lock_guard g(spare_mu_);
      if (spare_ != nullptr) {
        Bag* b = spare_;
        spare_ = b->next;
        b->next = nullptr;
        b->count = 0;
        return b;
      }
    }
    void* mem = backing_.alloc(sizeof(Bag), alignof(Bag));
    return mem != nullptr ? ::new (mem) Bag{} : nullptr;
  }
  void give_spare(Bag* b) noexcept {
    std::lock_guard g(spare_mu_);
    b->count = 0;
    b->next = spare_;
    spare_ = b;
  }


 public:
  void fork_lock() noexcept { spare_mu_.lock(); }
  void fork_unlock() noexcept { spare_mu_.unlock(); }

 private:
  EpochDomain& epochs_;
  Allocator backing_;
  FreeFn free_fn_;
  void* ctx_;
  std::atomic<Bag*> sealed_{nullptr};
  std::atomic<std::uint64_t> sealed_count_{0};
  std::atomic<std::uint64_t> reclaimed_{0};
  std::mutex spare_mu_;
  Bag* spare_ = nullptr;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
