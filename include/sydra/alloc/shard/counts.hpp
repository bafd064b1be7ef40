// ShardCounts: a snapshot of every shard's counters, for snapshot_stats()
// and the leak report.
//
// Every counter has one writer (a shard's owner, or publishers once per
// batch) and only grows; a snapshot reads each whole, in an order that keeps
// every in-use count at or above zero (read()). Exact when the handle is
// quiet.
#pragma once

#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/slab/size_classes.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <class Shard>
struct ShardCounts {
  using Classes = typename Shard::Classes;

  const Shard* shards;
  std::size_t count;

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
  Transit read(At at) const noexcept {
    for (std::size_t i = 0; i < count; ++i)  // reclaimed before deferred: never ahead of it
      for (unsigned c = 0; c < Classes::count; ++c)
        if (ShardClassStats* k = at(i, c)) k->reclaimed += shards[i].in[c].reclaimed.get();
    for (std::size_t i = 0; i < count; ++i)
      for (unsigned c = 0; c < Classes::count; ++c)
        if (ShardClassStats* k = at(i, c)) k->deferred += shards[i].in[c].deferred_count.get();
    // In transit is a sum over every shard, whatever the rows: its blocks are
    // still in their home shard's count.
    std::array<std::uint64_t, Classes::count> published{}, remote{};
    for (std::size_t i = 0; i < count; ++i)
      for (unsigned c = 0; c < Classes::count; ++c) published[c] += shards[i].published[c].get();
    for (std::size_t i = 0; i < count; ++i)
      for (unsigned c = 0; c < Classes::count; ++c) remote[c] += shards[i].remote_out[c].get();
    for (std::size_t i = 0; i < count; ++i)
      for (unsigned c = 0; c < Classes::count; ++c)
        if (ShardClassStats* k = at(i, c)) k->frees += shards[i].head[c].frees.get();
    for (std::size_t i = 0; i < count; ++i)
      for (unsigned c = 0; c < Classes::count; ++c)
        if (ShardClassStats* k = at(i, c)) {
          k->allocations += shards[i].head[c].allocs.get();
          k->cached += shards[i].head[c].held();
        }
    Transit t;
    for (unsigned c = 0; c < Classes::count; ++c) {
      t.of[c] = remote[c] > published[c] ? remote[c] - published[c] : 0;
      t.total += t.of[c];
    }
    return t;
  }

  // The rows of snapshot_stats(): one per shard, one entry per class, and
  // the summary's totals.
  void summarize(ShardSummary& sum) const noexcept {
    try {
      sum.shards.assign(count, ShardStats{});
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
    const Transit t = read([rows](std::size_t i, unsigned c) -> ShardClassStats* {
      if (i >= rows->shards.size() || rows->shards[i].classes.size() != Classes::count) return nullptr;
      return &rows->shards[i].classes[c];
    });
    sum.in_transit = t.total;
    for (std::size_t i = 0; i < count && i < sum.shards.size(); ++i) {
      const Shard& s = shards[i];
      ShardStats& st = sum.shards[i];
      st.index = s.index;
      const std::uint64_t owner = s.owner_thread.load(std::memory_order_relaxed);
      st.owned = owner != 0 && owner != Shard::abandoned_owner;
      st.abandoned = owner == Shard::abandoned_owner;
      if (st.classes.size() != Classes::count) continue;
      std::uint64_t slabs = 0;
      for (unsigned c = 0; c < Classes::count; ++c) {
        ShardClassStats& k = st.classes[c];
        k.size = Classes::sizes[c];
        k.in_use = in_use_of(k);
        k.slabs = s.slabs(c);
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

  // For the leak report: f(cls, allocated, returned) per class, summed over
  // every shard, blocks in transit counted as returned. Needs no memory:
  // every shard's counts are summed per class as they are read, so the leak
  // report is exact (when quiet) even with the heap gone.
  template <class F>
  void per_class(F f) const noexcept {
    std::array<ShardClassStats, Classes::count> sums{};
    ShardClassStats* first = sums.data();
    const Transit t = read([first](std::size_t, unsigned c) { return first + c; });
    for (unsigned c = 0; c < Classes::count; ++c) {
      const ShardClassStats& k = sums[c];
      f(c, k.allocations, k.frees + k.deferred + t.of[c]);
    }
  }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
