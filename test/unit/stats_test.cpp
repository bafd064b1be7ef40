// The Stats snapshot: fmt table, JSON with the same numbers, never torn.
#include <sydra/alloc.hpp>
#include <sydra/alloc/format.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;
using json = nlohmann::json;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

void expect_json_matches(const sa::Stats& s, const json& j) {
  EXPECT_EQ(j["version"], s.version);
  EXPECT_EQ(j["has_memory"], s.has_memory);
  ASSERT_EQ(j["classes"].size(), s.classes.size());
  for (std::size_t i = 0; i < s.classes.size(); ++i) EXPECT_EQ(j["classes"][i], s.classes[i]);
  const json& m = j["memory"];
  EXPECT_EQ(m["reserved_bytes"], s.memory.reserved_bytes);
  EXPECT_EQ(m["committed_bytes"], s.memory.committed_bytes);
  EXPECT_EQ(m["in_use_bytes"], s.memory.in_use_bytes);
  EXPECT_EQ(m["retained_bytes"], s.memory.retained_bytes);
  EXPECT_EQ(m["decommitted_bytes"], s.memory.decommitted_bytes);
  EXPECT_EQ(m["metadata_bytes"], s.memory.metadata_bytes);
  EXPECT_EQ(m["chunks"], s.memory.chunks);
  EXPECT_EQ(m["slabs_reused_across_classes"], s.memory.slabs_reused_across_classes);
  EXPECT_EQ(m["decommits"], s.memory.decommits);
  EXPECT_EQ(m["retain_budget_bytes"], s.memory.retain_budget_bytes);
  EXPECT_EQ(j["mode"], std::string(s.mode));
  EXPECT_EQ(j["has_buckets"], s.has_buckets);
  EXPECT_EQ(j["has_shards"], s.has_shards);
  ASSERT_EQ(j["buckets"].size(), s.buckets.size());
  for (std::size_t i = 0; i < s.buckets.size(); ++i) {
    const auto& b = s.buckets[i];
    const json& jb = j["buckets"][i];
    EXPECT_EQ(jb["size"], b.size);
    EXPECT_EQ(jb["block_size"], b.block_size);
    EXPECT_EQ(jb["allocations"], b.allocations);
    EXPECT_EQ(jb["frees"], b.frees);
    EXPECT_EQ(jb["refills"], b.refills);
    EXPECT_EQ(jb["flushes"], b.flushes);
    EXPECT_EQ(jb["cached"], b.cached);
    EXPECT_EQ(jb["in_use"], b.in_use);
    EXPECT_EQ(jb["high_water"], b.high_water);
    EXPECT_EQ(jb["slabs"], b.slabs);
    EXPECT_EQ(jb["free_blocks"], b.free_blocks);
    EXPECT_EQ(jb["lock"]["acquisitions"], b.lock.acquisitions);
    EXPECT_EQ(jb["lock"]["contended"], b.lock.contended);
    EXPECT_EQ(jb["lock"]["wait_ns"], b.lock.wait_ns);
    EXPECT_EQ(jb["lock"]["max_wait_ns"], b.lock.max_wait_ns);
    EXPECT_EQ(jb["lock"]["hold_ns"], b.lock.hold_ns);
    EXPECT_EQ(jb["lock"]["hold_samples"], b.lock.hold_samples);
    EXPECT_EQ(jb["lock"]["threshold_ns"], b.lock.threshold_ns);
  }
  const json& f = j["fallback"];
  EXPECT_EQ(f["allocs"], s.fallback.allocs);
  EXPECT_EQ(f["frees"], s.fallback.frees);
  EXPECT_EQ(f["resizes"], s.fallback.resizes);
  EXPECT_EQ(f["remaps"], s.fallback.remaps);
  EXPECT_EQ(f["blocks_live"], s.fallback.blocks_live);
  EXPECT_EQ(f["bytes_live"], s.fallback.bytes_live);
  EXPECT_EQ(f["counts_underflow"], s.fallback.counts_underflow);
  ASSERT_EQ(f["sizes"].size(), s.fallback.sizes.size());
  for (std::size_t i = 0; i < s.fallback.sizes.size(); ++i) EXPECT_EQ(f["sizes"][i], s.fallback.sizes[i]);
  ASSERT_EQ(f["size_bounds"].size(), sa::FallbackStats::bounds.size());
  for (std::size_t i = 0; i < sa::FallbackStats::bounds.size(); ++i)
    EXPECT_EQ(f["size_bounds"][i], sa::FallbackStats::bounds[i]);
  const json& h = j["shards"];
  EXPECT_EQ(h["shard_count"], s.shards.shard_count);
  EXPECT_EQ(h["alloc_hits"], s.shards.alloc_hits);
  EXPECT_EQ(h["alloc_misses"], s.shards.alloc_misses);
  EXPECT_EQ(h["deferred_total"], s.shards.deferred_total);
  EXPECT_EQ(h["reclaimed_total"], s.shards.reclaimed_total);
  EXPECT_EQ(h["backlog"], s.shards.backlog);
  EXPECT_EQ(h["in_transit"], s.shards.in_transit);
  EXPECT_EQ(h["retired"], s.shards.retired);
  EXPECT_EQ(h["retired_pending"], s.shards.retired_pending);
  EXPECT_EQ(h["current_epoch"], s.shards.current_epoch);
  EXPECT_EQ(h["min_pinned_epoch"], s.shards.min_pinned_epoch);
  EXPECT_EQ(h["pinned_threads"], s.shards.pinned_threads);
  ASSERT_EQ(h["per_shard"].size(), s.shards.shards.size());
  for (std::size_t i = 0; i < s.shards.shards.size(); ++i) {
    const auto& sh = s.shards.shards[i];
    const json& js = h["per_shard"][i];
    EXPECT_EQ(js["index"], sh.index);
    EXPECT_EQ(js["owned"], sh.owned);
    EXPECT_EQ(js["alloc_hits"], sh.alloc_hits);
    EXPECT_EQ(js["backlog"], sh.backlog);
    EXPECT_EQ(js["reserved_bytes"], sh.reserved_bytes);
    ASSERT_EQ(js["classes"].size(), sh.classes.size());
    for (std::size_t c = 0; c < sh.classes.size(); ++c) {
      EXPECT_EQ(js["classes"][c]["frees"], sh.classes[c].frees);
      EXPECT_EQ(js["classes"][c]["cached"], sh.classes[c].cached);
      EXPECT_EQ(js["classes"][c]["slabs"], sh.classes[c].slabs);
      EXPECT_EQ(js["classes"][c]["size"], sh.classes[c].size);
      EXPECT_EQ(js["classes"][c]["allocations"], sh.classes[c].allocations);
      EXPECT_EQ(js["classes"][c]["in_use"], sh.classes[c].in_use);
      EXPECT_EQ(js["classes"][c]["deferred"], sh.classes[c].deferred);
      EXPECT_EQ(js["classes"][c]["reclaimed"], sh.classes[c].reclaimed);
    }
  }
}

TEST(Stats, JsonParsesAndHoldsTheStructsNumbers) {
  Pool h(Pool::Options{.pool = {.shards = 2}});
  std::vector<std::pair<void*, std::size_t>> live;
  for (std::size_t len : {8u, 16u, 30u, 64u, 100u, 256u, 300u, 1000u, 9000u}) live.emplace_back(h.alloc(len, 8), len);
  std::thread other([&] {  // a second shard's owner, and a cross-thread free
    void* p = h.alloc(48, 8);
    h.free(p, 48, 8);
    h.free(live[0].first, live[0].second, 8);
  });
  other.join();
  live.erase(live.begin());
  const sa::Stats s = h.snapshot_stats();
  const json j = json::parse(sa::to_json(s));  // throws (and fails the test) if malformed
  expect_json_matches(s, j);
  EXPECT_GT(s.shards.alloc_hits, 0u);
  EXPECT_EQ(s.shards.deferred_total, 1u);
  for (auto [p, len] : live) h.free(p, len, 8);
  h.collect_garbage();
}

TEST(Stats, TableShowsEachShardsInUseByClass) {
  Pool h(Pool::Options{.pool = {.shards = 2}});
  std::vector<void*> blocks;
  for (int i = 0; i < 7; ++i) blocks.push_back(h.alloc(96, 8));
  const std::string table = fmt::format("{}", h.snapshot_stats());
  EXPECT_NE(table.find("in_use by class:"), std::string::npos) << table;
  // The owned shard's row: 7 hits, and 7 in use in the 96-byte class (the 6th).
  EXPECT_NE(table.find(fmt::format(" {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}\n", 0, 0, 0, 0, 0, 7, 0,
                                   0, 0)),
            std::string::npos)
      << table;
  for (void* p : blocks) h.free(p, 96, 8);
}

TEST(Stats, TableNamesEveryBucketAndTheHistogram) {
  Pool h(Pool::Options{.pool = {.shards = 0}});
  void* p = h.alloc(100, 8);
  void* q = h.alloc(5000, 8);
  const sa::Stats s = h.snapshot_stats();
  const std::string table = fmt::format("{:a}", s);  // every row, the all-zero ones too
  EXPECT_NE(table.find("sydra-alloc stats v2 (mode small_pool)"), std::string::npos) << table;
  for (auto size : Pool::Classes::sizes)
    EXPECT_NE(table.find(fmt::format("\n{:>6} ", size)), std::string::npos) << size;
  // By default only the rows with something in them: the 128-byte class.
  const std::string brief = fmt::format("{}", s);
  EXPECT_NE(brief.find(fmt::format("\n{:>6} ", 128)), std::string::npos) << brief;
  EXPECT_EQ(brief.find(fmt::format("\n{:>6} ", 48)), std::string::npos) << brief;
  EXPECT_NE(brief.find("reading: served:"), std::string::npos) << brief;
  EXPECT_NE(table.find("fallback: allocs 1 frees 0"), std::string::npos) << table;
  EXPECT_NE(table.find("8192"), std::string::npos);
  h.free(p, 100, 8);
  h.free(q, 5000, 8);
}

// Snapshots taken while two threads allocate and free: every counter only
// grows from one snapshot to the next, in_use is never negative (it would
// show as a wrap to a huge number), and a bucket's numbers agree with each
// other. A snapshot reads removals before additions, so while threads run a
// live count may be ahead by what was allocated during the snapshot, never
// by more than was allocated since the one before. Once the threads stop,
// the counts are exact.
TEST(Stats, SnapshotsNeverTearUnderConcurrentUse) {
  Pool h(Pool::Options{.pool = {.shards = 0}});
  std::atomic<bool> stop{false};
  auto work = [&](std::size_t len) {
    std::vector<void*> mine;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 100; ++i) mine.push_back(h.alloc(len, 8));
      void* big = h.alloc(len * 10, 8);  // the fallback too
      for (void* p : mine) h.free(p, len, 8);
      h.free(big, len * 10, 8);
      mine.clear();
    }
  };
  std::thread a(work, 32), b(work, 200);
  sa::Stats prev = h.snapshot_stats();
  for (int i = 0; i < 300; ++i) {
    const sa::Stats s = h.snapshot_stats();
    for (std::size_t c = 0; c < s.buckets.size(); ++c) {
      const auto& bk = s.buckets[c];
      ASSERT_EQ(bk.in_use, bk.allocations - bk.frees);
      ASSERT_LE(bk.in_use, 200u + (bk.allocations - prev.buckets[c].allocations)) << "in_use wrapped or over-counted";
      ASSERT_LE(bk.in_use, bk.high_water);
      ASSERT_EQ(bk.free_blocks + bk.in_use, bk.slabs * (sa::slab_bytes / bk.size));
      ASSERT_GE(bk.allocations, prev.buckets[c].allocations);
      ASSERT_GE(bk.frees, prev.buckets[c].frees);
      ASSERT_GE(bk.refills, prev.buckets[c].refills);
      ASSERT_GE(bk.lock.acquisitions, prev.buckets[c].lock.acquisitions);
    }
    ASSERT_GE(s.fallback.allocs, prev.fallback.allocs);
    ASSERT_GE(s.fallback.frees, prev.fallback.frees);
    ASSERT_LE(s.fallback.blocks_live, 2u + (s.fallback.allocs - prev.fallback.allocs));
    ASSERT_FALSE(s.fallback.counts_underflow);
    prev = s;
  }
  stop = true;
  a.join();
  b.join();
  const sa::Stats end = h.snapshot_stats();
  for (const auto& bk : end.buckets) EXPECT_EQ(bk.in_use, 0u);
  EXPECT_EQ(end.fallback.blocks_live, 0u);
  EXPECT_EQ(end.fallback.allocs, end.fallback.frees);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

}  // namespace
