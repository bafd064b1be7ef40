// ShardEpochs<on>: a shard layer's epochs (epoch/epoch_domain.hpp) and
// retire bags (epoch/retire_bags.hpp), driven through each thread's binding.
//
// The layer keeps it as a [[no_unique_address]] member: with epochs off it is
// empty, and answers only what remote frees need of it (the stamp a batch
// gets, and that every batch is safe), so a layer without epochs pays neither
// a byte nor a load for them.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/epoch/epoch_domain.hpp>
#include <sydra/alloc/epoch/retire_bags.hpp>
#include <sydra/alloc/mixin/stats.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <bool On>
class ShardEpochs {
 public:
  ShardEpochs(Allocator, RetireBags::FreeFn, void*) noexcept {}

  static constexpr std::uint64_t stamp() noexcept { return 0; }  // 0: no stamp, nothing to wait for
  static constexpr std::uint64_t safe_below(bool) noexcept { return EpochDomain::nobody_pinned; }
};

template <>
class ShardEpochs<true> {
 public:
  using Slot = EpochDomain::Slot;
  using Bag = RetireBags::Bag;

  ShardEpochs(Allocator backing, RetireBags::FreeFn free_fn, void* ctx) noexcept
      : domain_(backing), bags_(domain_, backing, free_fn, ctx) {}

  // The stamp a batch of remote frees gets when it is published.
  std::uint64_t stamp() const noexcept { return domain_.current(); }
  // Batches stamped below this are safe to hand out again; `everything`:
  // all of them, pinned readers or not (the handle is going away).
  std::uint64_t safe_below(bool everything) const noexcept {
    return everything ? EpochDomain::nobody_pinned : domain_.min_pinned();
  }

  // A thread's slot (`held`, kept in its binding), claimed on first use.
  Slot* slot(Slot*& held) noexcept {
    if (held == nullptr) held = domain_.claim_slot();
    return held;
  }
  std::optional<std::uint64_t> enter(Slot* slot) noexcept {
    if (slot == nullptr) return std::nullopt;
    return domain_.pin(*slot);
  }
  void leave(Slot* slot, std::uint64_t observed) noexcept {
    if (slot == nullptr) return;
    if constexpr (checked) {
      if (slot->depth == 1 && slot->pinned.load(std::memory_order_relaxed) != observed)
        report_misuse(Misuse::bad_request, "leave_epoch with an epoch other than enter_epoch returned", nullptr, 0,
                      observed);
    }
    if (!domain_.unpin(*slot) && checked)
      report_misuse(Misuse::bad_request, "leave_epoch without enter_epoch", nullptr, 0, observed);
  }
  std::uint64_t advance() noexcept { return domain_.advance(); }
  std::uint64_t current() const noexcept { return domain_.current(); }

  bool retire(Bag*& bag, void* mem, std::size_t len, std::size_t align) noexcept {
    return bags_.retire(bag, mem, len, align);
  }
  // collect_garbage(): the caller's open bag (if it has a binding) is sealed,
  // the epoch advanced once, and the sealed bags it allows freed.
  std::size_t collect(Bag** mine) noexcept {
    if (mine != nullptr) bags_.seal_only(*mine);  // advanced and collected once, below
    domain_.advance();
    return bags_.collect();
  }
  // A thread leaves: its slot released, its bag sealed.
  void release(Slot* slot, Bag*& bag) noexcept {
    if (slot != nullptr) domain_.release_slot(slot);
    bags_.seal_only(bag);  // collected by the next seal or collect_garbage(), never here
  }

  // Before the handle dies: no reader may still be pinned (checked builds
  // say so), and every retired block is freed, pinned readers or not.
  void report_pinned_at_shutdown() const noexcept {
    if constexpr (checked) {
      if (domain_.pinned_count() != 0)
        report_misuse(Misuse::bad_request, "handle destroyed while a reader is pinned in its epoch", nullptr, 0, 0);
    }
  }
  void reclaim_all() noexcept { bags_.reclaim_all(); }

  void fork_lock() noexcept { bags_.fork_lock(); }
  void fork_unlock() noexcept { bags_.fork_unlock(); }

  // The epoch fields of snapshot_stats(); retired_total() counts every
  // thread's retires, read after the reclaimed count (removals first).
  template <class RetiredTotal>
  void summarize(ShardSummary& sum, RetiredTotal retired_total) const noexcept {
    sum.current_epoch = domain_.current();
    const std::uint64_t m = domain_.min_pinned();
    sum.min_pinned_epoch = m == EpochDomain::nobody_pinned ? 0 : m;
    sum.pinned_threads = domain_.pinned_count();
    const std::uint64_t reclaimed = bags_.reclaimed_blocks();  // removals first
    sum.retired = retired_total();
    sum.retired_pending = sum.retired > reclaimed ? sum.retired - reclaimed : 0;
  }

 private:
  [[no_unique_address]] EpochDomain domain_;  // the bags may sit in its tail padding, as they always have
  RetireBags bags_;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
