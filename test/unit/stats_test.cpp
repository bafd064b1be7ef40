// The Stats snapshot: fmt table, JSON with the same numbers, never torn.
#include <sydra/alloc.hpp>
#include <sydra/alloc/format.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;
using json = nlohmann::json;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SeedSmallPoolPolicy>;  // the seed's table: class indices below are its

// Stops and joins worker threads however the test leaves its scope, so that
// a failed ASSERT reports its message instead of terminating the process.
struct StopAndJoin {
  std::atomic<bool>& stop;
  std::vector<std::thread*> threads;
  void now() {
    stop = true;
    for (std::thread* t : threads)
      if (t->joinable()) t->join();
  }
  ~StopAndJoin() { now(); }
};

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
  EXPECT_EQ(m["chunks_released"], s.memory.chunks_released);
  EXPECT_EQ(m["oom_retries"], s.memory.oom_retries);
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
  StopAndJoin workers{stop, {&a, &b}};
  sa::Stats prev = h.snapshot_stats();
  for (int i = 0; i < 300; ++i) {
    const sa::Stats s = h.snapshot_stats();
    for (std::size_t c = 0; c < s.buckets.size(); ++c) {
      const auto& bk = s.buckets[c];
      ASSERT_EQ(bk.in_use, bk.allocations - bk.frees);
      ASSERT_LE(bk.in_use, 200u + (bk.allocations - prev.buckets[c].allocations)) << "in_use wrapped or over-counted";
      ASSERT_LE(bk.in_use, bk.high_water);
      // free_blocks = capacity - in_use, floored at 0: while threads run,
      // in_use may be ahead by what was allocated during the snapshot (even
      // past the capacity of the slabs read under the lock).
      const std::uint64_t capacity = bk.slabs * (sa::slab_bytes / bk.size);
      ASSERT_EQ(bk.free_blocks, capacity > bk.in_use ? capacity - bk.in_use : 0);
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
  workers.now();
  const sa::Stats end = h.snapshot_stats();
  for (const auto& bk : end.buckets) {
    EXPECT_EQ(bk.in_use, 0u);
    EXPECT_EQ(bk.free_blocks, bk.slabs * (sa::slab_bytes / bk.size));  // quiet: exact
  }
  EXPECT_EQ(end.fallback.blocks_live, 0u);
  EXPECT_EQ(end.fallback.allocs, end.fallback.frees);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// The shard counters under concurrent use: two shard owners that allocate,
// free their own blocks and each other's (remote frees, in batches), retire
// blocks and collect, plus a thread with no shard that frees shard blocks and
// uses the buckets. Every counter is monotone from one snapshot to the next,
// reclaimed never runs ahead of deferred, retired_pending never above
// retired, in_use never wraps and is over-counted by at most the blocks in
// transit plus what was allocated since the snapshot before; once the
// threads are gone and a collector ran, the counts are exact.
TEST(Stats, ShardCountersAreMonotoneNeverTornAndExactWhenQuiet) {
  Pool h(Pool::Options{.pool = {.shards = 2}});
  constexpr std::size_t kept = 64;  // blocks a worker holds at most, per list
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::pair<void*, std::size_t>> handoff;  // blocks for another thread to free
  std::latch bound(2);
  std::atomic<int> rounds{0};
  auto owner = [&](std::size_t len) {
    std::vector<void*> mine;
    bool first = true;
    while (!stop.load(std::memory_order_relaxed)) {
      for (std::size_t i = 0; i < kept; ++i) mine.push_back(h.alloc(len, 8));
      if (first) {
        bound.count_down();  // this thread holds a shard now
        first = false;
      }
      std::vector<std::pair<void*, std::size_t>> theirs;
      {
        std::lock_guard g(mu);
        theirs.swap(handoff);
        if (handoff.size() < kept) {
          for (std::size_t i = 0; i < kept / 2; ++i) {
            handoff.emplace_back(mine.back(), len);
            mine.pop_back();
          }
        }
      }
      for (auto [p, l] : theirs) h.free(p, l, 8);  // remote frees (or our own blocks back)
      for (std::size_t i = 0; i < 4 && !mine.empty(); ++i) {
        ASSERT_TRUE(h.retire(mine.back(), len, 8));
        mine.pop_back();
      }
      for (void* p : mine) h.free(p, len, 8);
      mine.clear();
      h.collect_garbage();
      rounds.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread a(owner, 32), b(owner, 96);
  StopAndJoin workers{stop, {&a, &b}};
  bound.wait();
  std::thread c([&] {  // no shard left: the buckets, and shard blocks freed at once
    std::vector<void*> mine;
    while (!stop.load(std::memory_order_relaxed)) {
      for (std::size_t i = 0; i < kept; ++i) mine.push_back(h.alloc(48, 8));
      std::vector<std::pair<void*, std::size_t>> theirs;
      {
        std::lock_guard g(mu);
        theirs.swap(handoff);
      }
      for (auto [p, l] : theirs) h.free(p, l, 8);
      for (void* p : mine) h.free(p, 48, 8);
      mine.clear();
    }
  });
  workers.threads.push_back(&c);

  auto total_allocs = [](const sa::Stats& s) {
    std::uint64_t n = s.shards.alloc_hits;
    for (const auto& bk : s.buckets) n += bk.allocations;
    return n;
  };
  sa::Stats prev = h.snapshot_stats();
  // 300 snapshots, and on until the owners have done 100 rounds between them.
  for (int i = 0; i < 300 || rounds.load(std::memory_order_relaxed) < 100; ++i) {
    const sa::Stats s = h.snapshot_stats();
    ASSERT_TRUE(s.has_shards);
    ASSERT_EQ(s.shards.shards.size(), 2u);
    const auto& H = s.shards;
    const auto& P = prev.shards;
    ASSERT_GE(H.alloc_hits, P.alloc_hits);
    ASSERT_GE(H.alloc_misses, P.alloc_misses);
    ASSERT_GE(H.deferred_total, P.deferred_total);
    ASSERT_GE(H.reclaimed_total, P.reclaimed_total);
    ASSERT_GE(H.retired, P.retired);
    ASSERT_GE(H.current_epoch, P.current_epoch);
    ASSERT_LE(H.reclaimed_total, H.deferred_total);
    ASSERT_EQ(H.backlog, H.deferred_total - H.reclaimed_total);
    ASSERT_LE(H.retired_pending, H.retired);
    ASSERT_LE(H.in_transit, 2u * 16u * 32u) << "in transit: at most 16 batches of up to 32 blocks per shard";
    std::uint64_t in_use = 0;
    for (std::size_t k = 0; k < H.shards.size(); ++k) {
      for (std::size_t c = 0; c < H.shards[k].classes.size(); ++c) {
        const auto& x = H.shards[k].classes[c];
        const auto& y = P.shards.size() == H.shards.size() ? P.shards[k].classes[c] : sa::ShardClassStats{};
        ASSERT_GE(x.allocations, y.allocations);
        ASSERT_GE(x.frees, y.frees);
        ASSERT_GE(x.deferred, y.deferred);
        ASSERT_GE(x.reclaimed, y.reclaimed);
        ASSERT_LE(x.reclaimed, x.deferred);
        ASSERT_LE(x.in_use, x.allocations) << "in_use wrapped";
        in_use += x.in_use;
      }
    }
    for (const auto& bk : s.buckets) in_use += bk.in_use;
    // Live when the snapshot began, at most: each thread's own list (3 x
    // kept), the hand-off list and the three lists taken from it (4 x 1.5
    // kept), retired blocks not yet reclaimed (each owner seals and collects
    // every round: 2 x kept is generous); plus blocks in transit (2 shards x
    // 16 batches x 32), plus what was allocated while the snapshot ran (at
    // most what was allocated since the one before).
    constexpr std::uint64_t live_max = 3 * kept + 4 * (kept + kept / 2) + 2 * kept;
    ASSERT_LE(in_use, live_max + 2u * 16u * 32u + (total_allocs(s) - total_allocs(prev))) << "in_use over-counted";
    prev = s;
  }
  workers.now();
  {
    std::lock_guard g(mu);
    for (auto [p, l] : handoff) h.free(p, l, 8);
    handoff.clear();
  }
  h.collect_garbage();  // every retired block and remote free reclaimed: nobody is pinned
  const sa::Stats end = h.snapshot_stats();
  EXPECT_EQ(end.shards.in_transit, 0u);  // the exiting owners published their batches
  EXPECT_EQ(end.shards.retired_pending, 0u);
  EXPECT_EQ(end.shards.backlog, 0u);
  EXPECT_GT(end.shards.retired, 0u);
  EXPECT_GT(end.shards.deferred_total, 0u);
  for (const auto& sh : end.shards.shards)
    for (const auto& k : sh.classes) EXPECT_EQ(k.in_use, 0u) << "shard " << sh.index << " class " << k.size;
  for (const auto& bk : end.buckets) EXPECT_EQ(bk.in_use, 0u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// What the table shows besides the counts: the JSON names, the lock
// threshold, the hold samples, the memory budget, one row per shard that
// has something in it (all of them with "{:a}"), in_use under its class.
TEST(Stats, TableShowsEveryPartWithTheJsonNames) {
  Pool h(Pool::Options{.pool = {.shards = 4}});
  std::vector<void*> blocks;
  for (int i = 0; i < 5; ++i) blocks.push_back(h.alloc(256, 8));
  void* big = h.alloc(3000, 8);
  const sa::Stats s = h.snapshot_stats();
  const std::string brief = fmt::format("{}", s);
  const std::string all = fmt::format("{:a}", s);
  for (const char* name : {"lock.threshold_ns 1000", "hold_samples", "hold_ns", "lock.acq", "contended",
                           "reserved_bytes", "retain_budget_bytes 4194304", "chunks 1", "decommits",
                           "bytes_live 3000", "in_transit", "retired_pending", "min_pinned_epoch"})
    EXPECT_NE(brief.find(name), std::string::npos) << name << "\n" << brief;
  // One owned shard: its row only; "{:a}" shows the three idle ones too.
  const std::string header_end = "| in_use by class:";
  EXPECT_NE(brief.find(fmt::format("{:>6} {:>6} {:>12} {:>9} {:>14} | ", 0, "yes", 5, 0, 65536)), std::string::npos)
      << brief;
  for (int i = 1; i < 4; ++i) {
    const std::string idle = fmt::format("{:>6} {:>6} {:>12} {:>9} {:>14} | ", i, "no", 0, 0, 0);
    EXPECT_EQ(brief.find(idle), std::string::npos) << brief;
    EXPECT_NE(all.find(idle), std::string::npos) << all;
  }
  // The in_use cell of the 256-byte class ends where its header does.
  const std::size_t head = brief.find(header_end);
  ASSERT_NE(head, std::string::npos);
  const std::size_t head_line = brief.rfind('\n', head) + 1;
  const std::size_t col_end = brief.find('\n', head) - head_line;  // the last class header ends the line
  const std::size_t row = brief.find(fmt::format("{:>6} {:>6} ", 0, "yes"));
  ASSERT_NE(row, std::string::npos);
  const std::size_t row_end = brief.find('\n', row);
  EXPECT_EQ(row_end - row, col_end) << brief;
  EXPECT_EQ(brief.substr(row_end - 8, 8), fmt::format(" {:>7}", 5)) << brief;
  for (void* p : blocks) h.free(p, 256, 8);
  h.free(big, 3000, 8);
}

// The reading's rules of thumb, each at its threshold (docs/stats.md lists
// the same numbers): at the threshold nothing is said, one past it the rule
// speaks.
TEST(Stats, ReadingRulesFireAtTheirThresholds) {
  auto says = [](const sa::Stats& s, const std::string& prefix) {
    for (const std::string& line : sa::read_stats(s))
      if (line.rfind(prefix, 0) == 0) return true;
    return false;
  };
  sa::Stats s;
  s.has_shards = s.has_buckets = s.has_memory = true;
  s.buckets.resize(1);
  EXPECT_EQ(sa::read_stats(s), std::vector<std::string>{"nothing stands out"});

  // Misses: bucket allocations above a quarter of small allocations.
  s.shards.alloc_hits = 300;
  s.buckets[0].allocations = 100;  // exactly a quarter
  EXPECT_FALSE(says(s, "alloc_misses:"));
  EXPECT_TRUE(says(s, "served: 75.0% by shards, 25.0% by the per-CPU caches and buckets, 0.0% by the fallback"));
  s.buckets[0].allocations = 101;
  EXPECT_TRUE(says(s, "alloc_misses:"));
  s.buckets[0].allocations = 0;

  // Contention: over 1% of bucket lock acquisitions.
  s.buckets[0].lock.acquisitions = 1000;
  s.buckets[0].lock.contended = 10;
  EXPECT_FALSE(says(s, "lock.contended:"));
  s.buckets[0].lock.contended = 11;
  EXPECT_TRUE(says(s, "lock.contended:"));
  s.buckets[0].lock = {};

  s.shards.backlog = 4096;
  EXPECT_FALSE(says(s, "backlog:"));
  s.shards.backlog = 4097;
  EXPECT_TRUE(says(s, "backlog:"));
  s.shards.backlog = 0;

  s.shards.retired = 5000;
  s.shards.retired_pending = 4096;
  EXPECT_FALSE(says(s, "retired_pending:"));
  s.shards.retired_pending = 4097;
  EXPECT_TRUE(says(s, "retired_pending:"));
  s.shards.retired_pending = 0;

  s.shards.pinned_threads = 1;
  s.shards.current_epoch = 12;
  s.shards.min_pinned_epoch = 10;  // two behind
  EXPECT_FALSE(says(s, "epoch lag:"));
  s.shards.min_pinned_epoch = 9;
  EXPECT_TRUE(says(s, "epoch lag:"));
  s.shards.pinned_threads = 0;  // nobody pinned: no lag, whatever the numbers
  EXPECT_FALSE(says(s, "epoch lag:"));

  s.fallback.counts_underflow = true;
  EXPECT_TRUE(says(s, "counts_underflow:"));
  s.fallback.counts_underflow = false;

  s.memory.retain_budget_bytes = 4u << 20;
  s.memory.retained_bytes = 4u << 20;
  EXPECT_FALSE(says(s, "retained_bytes:"));
  s.memory.retained_bytes += sa::slab_bytes;
  EXPECT_TRUE(says(s, "retained_bytes:"));

  // The table ends with the reading.
  const std::string table = fmt::format("{}", s);
  EXPECT_NE(table.find("reading: retained_bytes:"), std::string::npos) << table;
}

// The policy's name is any C string: to_json escapes it.
TEST(Stats, JsonEscapesTheModeName) {
  sa::Stats s;
  s.mode = "my \"pool\"\\v2\n";
  const json j = json::parse(sa::to_json(s));
  EXPECT_EQ(j["mode"], "my \"pool\"\\v2\n");
}

}  // namespace
