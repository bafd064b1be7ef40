// Memory runs out while the shard layer counts: the backing heap is exhausted
// (test/support/failing_heap.hpp) and operator new, which the Stats vectors
// use, fails from a chosen call on. The leak report must still be exact, and a
// snapshot must leave out the rows it could not make, never read past them.
// (The shard counts used to be read into a vector first; when that vector
// could not grow, they were read back from past its end.)
//
// Its own executable: it replaces the global operator new and delete.
#include <sydra/alloc.hpp>

#include "../support/failing_heap.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

namespace {

// Per thread: operator new calls made, and which of them fail (the calls
// numbered fail_from..fail_to; none when fail_from is 0).
thread_local unsigned long news_made = 0;
thread_local unsigned long fail_from = 0, fail_to = 0;

void* counted_new(std::size_t n) {
  ++news_made;
  if (fail_from != 0 && news_made >= fail_from && news_made <= fail_to) throw std::bad_alloc();
  if (void* p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}

// Makes the calls numbered from..to (counting from the next one) fail.
void fail_news(unsigned long from, unsigned long to) {
  news_made = 0;
  fail_from = from;
  fail_to = to;
}
void news_succeed() { fail_from = 0; }
constexpr unsigned long every_call = ~0ul;

}  // namespace

void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace sa = sydra::alloc;

namespace {

using FailingPool = sa::BasicAllocatorHandle<sa::test::FailingSmallPool>;
constexpr std::size_t shard_count = 4;

struct Held {
  void* p;
  std::size_t len;
};

// Shard blocks live on this thread and on an exited one, some of the latter
// freed here (deferred to their shard), plus bucket and fallback blocks, so
// that every counter the shard layer reads is non-zero.
std::vector<Held> make_live_blocks(FailingPool& h) {
  std::vector<Held> held;
  for (std::size_t len : {16u, 24u, 48u, 64u, 128u, 256u, 300u, 5000u}) held.push_back({h.alloc(len, 8), len});
  std::vector<Held> theirs;
  std::thread([&] {
    for (std::size_t len : {16u, 32u, 96u, 192u}) theirs.push_back({h.alloc(len, 8), len});
  }).join();
  h.free(theirs[0].p, theirs[0].len, 8);  // a remote free: deferred to the exited thread's shard
  h.free(theirs[1].p, theirs[1].len, 8);
  h.collect_garbage();  // publishes this thread's batch: the frees are counted as deferred
  held.insert(held.end(), theirs.begin() + 2, theirs.end());
  for (const Held& b : held) EXPECT_NE(b.p, nullptr);
  return held;
}

FailingPool::Options failing(sa::test::FailPlan& plan) {
  return FailingPool::Options{.pool = {.shards = shard_count}, .fallback = {.plan = &plan}, .regions = {.plan = &plan}};
}

TEST(ShardCountsOutOfMemory, LeakReportStaysExactWithNoMemoryAnywhere) {
  sa::test::FailPlan plan;
  FailingPool h(failing(plan));
  const std::vector<Held> held = make_live_blocks(h);
  const sa::LeakReport want = h.leaks();
  ASSERT_EQ(want.blocks, held.size());

  plan.exhausted = true;
  fail_news(1, every_call);
  const sa::LeakReport got = h.leaks();
  news_succeed();
  plan.exhausted = false;
  EXPECT_EQ(got, want);

  for (const Held& b : held) h.free(b.p, b.len, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(ShardCountsOutOfMemory, SnapshotLeavesOutTheRowsItCouldNotMake) {
  sa::test::FailPlan plan;
  FailingPool h(failing(plan));
  const std::vector<Held> held = make_live_blocks(h);

  sa::Stats ref;
  news_made = 0;
  h.shards().collect_stats(ref);
  const unsigned long news_needed = news_made;
  ASSERT_EQ(ref.shards.shards.size(), shard_count);
  ASSERT_GT(ref.shards.alloc_hits, 0u);
  ASSERT_GT(ref.shards.deferred_total, 0u);
  ASSERT_GT(news_needed, 0u);

  // Operator new fails at call k alone, or from call k on, for every k up to
  // one past what a whole snapshot needs (which must then be the reference,
  // exactly).
  for (unsigned long k = 1; k <= news_needed + 1; ++k) {
    for (const bool alone : {true, false}) {
      SCOPED_TRACE(testing::Message() << "operator new fails at call " << k << (alone ? " alone" : " and after")
                                      << "; a snapshot makes " << news_needed);
      sa::Stats s;
      plan.exhausted = true;
      fail_news(k, alone ? k : every_call);
      h.shards().collect_stats(s);
      news_succeed();
      plan.exhausted = false;

      const sa::ShardSummary& sum = s.shards;
      EXPECT_TRUE(s.has_shards);
      EXPECT_EQ(sum.shard_count, shard_count);
      EXPECT_EQ(sum.in_transit, ref.shards.in_transit);
      EXPECT_TRUE(sum.shards.empty() || sum.shards.size() == shard_count);
      std::uint64_t hits = 0, complete = 0;
      for (std::size_t i = 0; i < sum.shards.size(); ++i) {
        const sa::ShardStats& row = sum.shards[i];
        const sa::ShardStats& want = ref.shards.shards[i];
        EXPECT_EQ(row.index, want.index);
        if (row.classes.empty()) {  // left out: nothing counted for it
          EXPECT_EQ(row.alloc_hits, 0u);
          EXPECT_EQ(row.backlog, 0u);
          continue;
        }
        ++complete;
        ASSERT_EQ(row.classes.size(), want.classes.size());
        for (std::size_t c = 0; c < row.classes.size(); ++c) {
          EXPECT_EQ(row.classes[c].allocations, want.classes[c].allocations) << "shard " << i << " class " << c;
          EXPECT_EQ(row.classes[c].frees, want.classes[c].frees) << "shard " << i << " class " << c;
          EXPECT_EQ(row.classes[c].deferred, want.classes[c].deferred) << "shard " << i << " class " << c;
          EXPECT_EQ(row.classes[c].in_use, want.classes[c].in_use) << "shard " << i << " class " << c;
        }
        EXPECT_EQ(row.alloc_hits, want.alloc_hits);
        hits += row.alloc_hits;
      }
      EXPECT_EQ(sum.alloc_hits, hits) << "the summary adds up the rows it has";
      if (k > news_needed) {
        EXPECT_EQ(complete, shard_count);
        EXPECT_EQ(sum.alloc_hits, ref.shards.alloc_hits);
        EXPECT_EQ(sum.deferred_total, ref.shards.deferred_total);
      } else {
        EXPECT_LT(complete, shard_count) << "a failed allocation left a row out";
      }
    }
  }

  for (const Held& b : held) h.free(b.p, b.len, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

}  // namespace
