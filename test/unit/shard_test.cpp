// small_pool's shards: one owning thread per shard, misses, deferred
// cross-thread frees, thread exit and adoption. These are the seed's four
// tests plus the cases the seed got wrong.
#include <sydra/alloc.hpp>

#include "../support/failing_heap.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <set>
#include <thread>
#include <type_traits>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SeedSmallPoolPolicy>;  // the seed's table: class indices below are its
Pool::Options with_shards(std::size_t n) { return Pool::Options{.pool = {.shards = n}}; }

// Stats are an opt-in that costs nothing when a policy leaves it out: its
// shards' fast-path counters are empty types, so a pop and a push count nothing.
using LeanShard = sa::BasicAllocatorHandle<sa::SmallPoolPolicyWith<4, false, false>>::Shards::Shard;
using CountedShard = Pool::Shards::Shard;
static_assert(std::is_empty_v<decltype(LeanShard::Head::allocs)> && std::is_empty_v<decltype(LeanShard::Head::frees)>);
static_assert(!std::is_empty_v<decltype(CountedShard::Head::allocs)> &&
              !std::is_empty_v<decltype(CountedShard::Head::frees)>);

const void* shard_of(const void* p) {
  const sa::SlabMeta* s = sa::Pagemap::lookup(p);
  return s != nullptr && s->kind == sa::SlabKind::shard ? s->owner : nullptr;
}

TEST(Shards, OversizeGoesToTheFallbackNotAShard) {
  Pool h(with_shards(2));
  void* p = h.alloc(4096, 8);
  void* q = h.alloc(64, 32);
  ASSERT_TRUE(p && q);
  EXPECT_EQ(shard_of(p), nullptr);
  EXPECT_EQ(shard_of(q), nullptr);
  const sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(s.fallback.allocs, 2u);
  EXPECT_EQ(s.shards.alloc_hits, 0u);
  h.free(p, 4096, 8);
  h.free(q, 64, 32);
}

TEST(Shards, HitsAreTracked) {
  Pool h(with_shards(2));
  std::vector<void*> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(h.alloc(40, 8));
  for (int i = 0; i < 5; ++i) blocks.push_back(h.alloc(200, 8));
  const sa::Stats s = h.snapshot_stats();
  ASSERT_TRUE(s.has_shards);
  EXPECT_EQ(s.shards.shard_count, 2u);
  EXPECT_EQ(s.shards.alloc_hits, 15u);
  EXPECT_EQ(s.shards.alloc_misses, 0u);
  for (std::size_t c = 0; c < Pool::Classes::count; ++c) EXPECT_EQ(s.buckets[c].allocations, 0u);
  std::uint64_t owned = 0, in_use_48 = 0, in_use_256 = 0;
  for (const auto& sh : s.shards.shards) {
    owned += sh.owned;
    in_use_48 += sh.classes[3].in_use;
    in_use_256 += sh.classes[8].in_use;
  }
  EXPECT_EQ(owned, 1u);
  EXPECT_EQ(in_use_48, 10u);
  EXPECT_EQ(in_use_256, 5u);
  for (std::size_t i = 0; i < blocks.size(); ++i) h.free(blocks[i], i < 10 ? 40 : 200, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(Shards, EachThreadGetsItsOwnShard) {
  constexpr int threads = 4;
  Pool h(with_shards(threads));
  std::vector<const void*> owner(threads);
  std::vector<void*> block(threads);
  std::barrier all_allocated(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      block[static_cast<std::size_t>(t)] = h.alloc(32, 8);
      owner[static_cast<std::size_t>(t)] = shard_of(block[static_cast<std::size_t>(t)]);
      all_allocated.arrive_and_wait();  // every thread holds its shard at once
      h.free(block[static_cast<std::size_t>(t)], 32, 8);
    });
  for (auto& t : ts) t.join();
  std::set<const void*> distinct(owner.begin(), owner.end());
  EXPECT_EQ(distinct.size(), static_cast<std::size_t>(threads));
  EXPECT_EQ(distinct.count(nullptr), 0u);
  EXPECT_EQ(h.snapshot_stats().shards.alloc_misses, 0u);
}

TEST(Shards, MoreThreadsThanShardsMissToTheBuckets) {
  constexpr int threads = 5;
  Pool h(with_shards(2));
  std::vector<const void*> owner(threads);
  std::barrier all_allocated(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      std::vector<void*> mine;
      for (int i = 0; i < 100; ++i) mine.push_back(h.alloc(64, 8));
      owner[static_cast<std::size_t>(t)] = shard_of(mine[0]);
      for (void* p : mine) EXPECT_EQ(shard_of(p), owner[static_cast<std::size_t>(t)]);  // never switches mid-life
      all_allocated.arrive_and_wait();
      for (void* p : mine) h.free(p, 64, 8);
    });
  for (auto& t : ts) t.join();
  const auto with_shard = std::count_if(owner.begin(), owner.end(), [](const void* o) { return o != nullptr; });
  EXPECT_EQ(with_shard, 2);
  EXPECT_EQ(std::set<const void*>(owner.begin(), owner.end()).size(), 3u);  // two shards + nullptr
  h.collect_garbage();
  const sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(s.shards.alloc_misses, 300u);  // three threads x 100 small allocations
  EXPECT_EQ(s.buckets[4].allocations, 300u);
  EXPECT_EQ(s.shards.alloc_hits, 200u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(Shards, CrossThreadFreesAreDeferredThenReclaimed) {
  Pool h(with_shards(2));
  std::vector<void*> blocks;
  for (int i = 0; i < 50; ++i) blocks.push_back(h.alloc(24, 8));
  std::thread([&] {
    for (void* p : blocks) h.free(p, 24, 8);
  }).join();
  sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(s.shards.deferred_total, 50u);
  EXPECT_EQ(s.shards.backlog, 50u);
  EXPECT_EQ(s.shards.reclaimed_total, 0u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});  // deferred blocks are not live
  EXPECT_EQ(h.collect_garbage(), 50u);
  s = h.snapshot_stats();
  EXPECT_EQ(s.shards.reclaimed_total, 50u);
  EXPECT_EQ(s.shards.backlog, 0u);
  // The owner gets those blocks back: they follow what its head still held
  // (blocks carved in the fill after the 50th), before any new carving.
  const sa::ShardClassStats& k = s.shards.shards[static_cast<const sa::ShardStats&>(
      *std::find_if(s.shards.shards.begin(), s.shards.shards.end(), [](const auto& x) { return x.owned; }))
                                                     .index]
                                         .classes[1];
  const std::uint64_t in_head = k.cached;
  std::set<void*> before(blocks.begin(), blocks.end()), after;
  for (std::uint64_t i = 0; i < in_head + 50; ++i) after.insert(h.alloc(24, 8));
  EXPECT_TRUE(std::includes(after.begin(), after.end(), before.begin(), before.end()));
  for (void* p : after) h.free(p, 24, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(Shards, ThreadExitReleasesTheShardAndALaterThreadAdoptsIt) {
  Pool h(with_shards(1));
  std::vector<void*> from_exited;
  const void* first_owner = nullptr;
  std::thread([&] {
    for (int i = 0; i < 100; ++i) from_exited.push_back(h.alloc(48, 8));
    first_owner = shard_of(from_exited[0]);
  }).join();  // exits with 100 live blocks
  ASSERT_NE(first_owner, nullptr);
  sa::Stats s = h.snapshot_stats();
  EXPECT_FALSE(s.shards.shards[0].owned);
  EXPECT_EQ(s.shards.shards[0].classes[3].in_use, 100u);
  // Free half of the exited thread's blocks from here: they queue on its shard.
  for (int i = 0; i < 50; ++i) h.free(from_exited[static_cast<std::size_t>(i)], 48, 8);
  EXPECT_EQ(h.snapshot_stats().shards.backlog, 50u);
  // A new thread adopts the shard, with its slabs and their remote frees
  // intact, and hands the freed blocks out again before it takes a new slab.
  std::set<void*> freed(from_exited.begin(), from_exited.begin() + 50);
  const std::uint64_t slabs = h.snapshot_stats().shards.shards[0].classes[3].slabs;
  std::thread([&] {
    std::vector<void*> mine;
    std::size_t seen = 0;
    while (seen < freed.size() && mine.size() < 2 * sa::slab_bytes / 48) {
      mine.push_back(h.alloc(48, 8));
      seen += freed.count(mine.back());
    }
    EXPECT_EQ(shard_of(mine[0]), first_owner);
    EXPECT_EQ(seen, freed.size()) << "every remotely freed block came back to the adopting owner";
    EXPECT_EQ(h.snapshot_stats().shards.shards[0].classes[3].slabs, slabs) << "before any new slab";
    for (void* p : mine) h.free(p, 48, 8);
  }).join();
  for (int i = 50; i < 100; ++i) h.free(from_exited[static_cast<std::size_t>(i)], 48, 8);
  h.collect_garbage();
  s = h.snapshot_stats();
  EXPECT_EQ(s.shards.alloc_misses, 0u);
  EXPECT_EQ(s.shards.backlog, 0u);
  EXPECT_EQ(s.shards.deferred_total, 100u);
  EXPECT_EQ(s.shards.reclaimed_total, 100u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(Shards, NoManagerWhenConfiguredOff) {
  Pool h(with_shards(0));
  EXPECT_FALSE(h.enter_epoch().has_value());
  EXPECT_FALSE(h.advance_epoch().has_value());
  void* p = h.alloc(32, 8);
  EXPECT_EQ(shard_of(p), nullptr);
  EXPECT_TRUE(h.retire(p, 32, 8));  // nobody can pin: freed at once
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
  EXPECT_FALSE(h.snapshot_stats().has_shards);
}

TEST(Shards, AManagerThatCannotBeCreatedMeansNoShards) {
  sa::test::FailPlan plan;
  plan.fail_at = 1;  // the first backing call is the shard array
  using FailingPool = sa::BasicAllocatorHandle<sa::test::FailingSmallPool>;
  FailingPool h(FailingPool::Options{.pool = {.shards = 4}, .fallback = {.plan = &plan}});  // slab regions: no plan
  EXPECT_EQ(plan.calls.load(), 1u);
  EXPECT_FALSE(h.enter_epoch().has_value());
  void* p = h.alloc(32, 8);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(shard_of(p), nullptr);
  EXPECT_EQ(h.snapshot_stats().buckets[2].allocations, 1u);
  h.free(p, 32, 8);
}

TEST(Shards, TwoHandlesInOneThreadKeepTheirBlocksApart) {
  Pool a(with_shards(1)), b(with_shards(1));
  void* pa = a.alloc(16, 8);
  void* pb = b.alloc(16, 8);
  void* pa2 = a.alloc(16, 8);
  ASSERT_TRUE(pa && pb && pa2);
  EXPECT_NE(shard_of(pa), shard_of(pb));
  EXPECT_EQ(shard_of(pa), shard_of(pa2));
  a.free(pa, 16, 8);
  b.free(pb, 16, 8);
  a.free(pa2, 16, 8);
  EXPECT_EQ(a.leaks(), sa::LeakReport{});
  EXPECT_EQ(b.leaks(), sa::LeakReport{});
  EXPECT_EQ(a.snapshot_stats().shards.deferred_total, 0u);  // all frees were local
}

}  // namespace
