// Out of memory, everywhere: backing memory (the heap behind the fallback and
// the bookkeeping, and the slab regions) that fails its k-th call, for every
// k up to the number of calls a scripted workload makes. Each time the
// failing operation reports it cleanly, or the failure is absorbed in a
// documented way, nothing leaks, no lock stays held, the stats stay
// consistent, and the handle works once memory is back.
#include <sydra/alloc.hpp>
#include <sydra/alloc/pmr.hpp>
#include <sydra/alloc/stl.hpp>

#include "../support/failing_heap.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using FailingPool = sa::BasicAllocatorHandle<sa::test::FailingSmallPool>;

struct Block {
  void* p;
  std::size_t len;
  std::size_t align;
  unsigned char fill;
};

// The workload: every path that can reach the backing heap. Operations that
// fail are recorded, never retried; everything that succeeded is freed.
// Returns the number of operations that failed.
int run_workload(FailingPool& h) {
  int failures = 0;
  std::vector<Block> live;
  auto alloc = [&](std::size_t len, std::size_t align) {
    void* p = h.alloc(len, align);
    if (p == nullptr) {
      ++failures;
      return;
    }
    const auto fill = static_cast<unsigned char>(live.size() * 7 + 1);
    std::memset(p, fill, len);
    live.push_back({p, len, align, fill});
  };
  for (std::size_t len : {8u, 24u, 40u, 64u, 96u, 128u, 160u, 256u}) alloc(len, 8);  // shard slabs
  for (std::size_t len : {300u, 5000u, 70000u}) alloc(len, 8);                          // fallback
  alloc(64, 32);                                                                          // over-aligned
  // The bucket path, from a thread that finds no free shard (shards = 1).
  std::async(std::launch::async, [&] {
    for (std::size_t len : {16u, 48u, 200u}) alloc(len, 8);
  }).get();
  // Remaps: pooled -> fallback and fallback -> larger fallback.
  for (std::size_t i = 0; i < live.size(); ++i) {
    Block& b = live[i];
    if (b.len != 40 && b.len != 5000) continue;
    const std::size_t new_len = b.len == 40 ? 4000 : 50000;
    void* q = h.remap(b.p, b.len, b.align, new_len);
    if (q == nullptr) {
      ++failures;  // the old block must be intact
      for (std::size_t k = 0; k < b.len; ++k) EXPECT_EQ(static_cast<unsigned char*>(b.p)[k], b.fill);
      continue;
    }
    for (std::size_t k = 0; k < b.len; ++k) EXPECT_EQ(static_cast<unsigned char*>(q)[k], b.fill);
    std::memset(q, b.fill, new_len);
    b.p = q;
    b.len = new_len;
  }
  // Epochs: a pin needs a slot; a retire needs a bag.
  if (auto e = h.enter_epoch()) {
    h.leave_epoch(*e);
  } else {
    ++failures;
  }
  if (void* r = h.alloc(3000, 8)) {
    if (!h.retire(r, 3000, 8)) {
      ++failures;
      h.free(r, 3000, 8);
    }
  } else {
    ++failures;
  }
  h.collect_garbage();
  // Contents survived, then everything goes back.
  for (const Block& b : live)
    for (std::size_t k = 0; k < b.len; ++k) EXPECT_EQ(static_cast<unsigned char*>(b.p)[k], b.fill);
  for (const Block& b : live) h.free(b.p, b.len, b.align);
  return failures;
}

std::uint64_t bucket_allocations(FailingPool& h) {
  std::uint64_t n = 0;
  for (const auto& b : h.snapshot_stats().buckets) n += b.allocations;
  return n;
}

FailingPool::Options failing(sa::test::FailPlan& plan, std::size_t shards) {
  return FailingPool::Options{.pool = {.shards = shards}, .fallback = {.plan = &plan}, .regions = {.plan = &plan}};
}

// The per-thread counter blocks (Tracked's and Audited's): a thread that
// cannot have one counts into shared leftovers instead, so its failure shows
// nowhere but in the exactness of the counts, which every iteration checks.
bool is_counter_block(std::size_t len, std::size_t align) {
  return align == 64 && (len == FailingPool::Fallback::thread_block_bytes ||
                         len == sa::LiveCounts::thread_block_bytes);
}
// A thread's binding to the shard layer: without one it runs as a thread
// without a shard, which shows (as a bucket allocation) only if it would have
// had one.
bool is_binding(std::size_t len) { return len == FailingPool::Shards::binding_bytes; }

void expect_consistent(FailingPool& h) {
  const sa::Stats s = h.snapshot_stats();
  for (const auto& b : s.buckets) {
    EXPECT_EQ(b.in_use, b.allocations - b.frees);
    EXPECT_EQ(b.free_blocks + b.in_use, b.slabs * (sa::slab_bytes / b.size));
  }
  EXPECT_EQ(s.fallback.allocs, s.fallback.frees);
  EXPECT_EQ(s.shards.backlog, 0u);
}

TEST(OutOfMemory, EveryBackingCallFailingInTurn) {
  sa::test::FailPlan counting;
  std::uint64_t total = 0, baseline_bucket_allocs = 0, baseline_fallback_allocs = 0, baseline_reserved = 0;
  {
    FailingPool h(failing(counting, 1));
    EXPECT_EQ(run_workload(h), 0);
    total = counting.calls.load();
    baseline_bucket_allocs = bucket_allocations(h);
    baseline_fallback_allocs = h.snapshot_stats().fallback.allocs;
    baseline_reserved = h.snapshot_stats().memory.reserved_bytes;
  }
  EXPECT_EQ(counting.live.load(), 0);
  ASSERT_GT(total, 10u);
  for (std::uint64_t k = 1; k <= total; ++k) {
    SCOPED_TRACE(testing::Message() << "backing call " << k << " of " << total << " fails");
    sa::test::FailPlan plan;
    plan.fail_at = k;
    {
      FailingPool h(failing(plan, 1));
      const int failures = run_workload(h);
      // Call k failed, and the workload saw it: an operation reported
      // nullptr/false; or a shard's failed slab refill was absorbed by the
      // bucket layer (one more bucket allocation than normal), or a bucket's
      // by the fallback (one more fallback allocation); or it was the shard
      // array (k = 1), which degrades to no shards; or a thread's counter
      // block, absorbed by the shared leftovers; or a slab region, which the
      // pool asks for again at half the size; or a thread's shard binding; or
      // an allocation or remap that failed and succeeded when retried after
      // the handle gave its empty chunks back (memory.oom_retries).
      const std::uint64_t extra = bucket_allocations(h) - baseline_bucket_allocs;
      const sa::Stats st = h.snapshot_stats();
      const std::uint64_t extra_fallback = st.fallback.allocs - baseline_fallback_allocs;
      const bool smaller_region = plan.failed_align.load() == sa::slab_bytes && st.memory.reserved_bytes < baseline_reserved;
      if (k == 1) {
        EXPECT_FALSE(h.enter_epoch().has_value());
      } else {
        EXPECT_TRUE(failures >= 1 || extra == 1 || extra_fallback == 1 || smaller_region || st.memory.oom_retries == 1 ||
                    is_counter_block(plan.failed_len.load(), plan.failed_align.load()) ||
                    is_binding(plan.failed_len.load()))
            << "failures " << failures << ", extra bucket allocs " << extra << ", extra fallback allocs "
            << extra_fallback << ", failed call: " << plan.failed_len.load() << " bytes at "
            << plan.failed_align.load();
      }
      EXPECT_EQ(h.leaks(), sa::LeakReport{});
      expect_consistent(h);
      // Memory is back: every path works again, and no lock is held (a held
      // bucket lock would hang the other thread; the future bounds the wait).
      void* p = h.alloc(48, 8);
      void* q = h.alloc(9000, 8);
      EXPECT_NE(p, nullptr);
      EXPECT_NE(q, nullptr);
      auto other = std::async(std::launch::async, [&] {
        void* r = h.alloc(48, 8);
        h.free(r, 48, 8);
        return r != nullptr;
      });
      ASSERT_EQ(other.wait_for(std::chrono::seconds(10)), std::future_status::ready);
      EXPECT_TRUE(other.get());
      h.free(p, 48, 8);
      h.free(q, 9000, 8);
      EXPECT_EQ(h.leaks(), sa::LeakReport{});
    }
    EXPECT_EQ(plan.live.load(), 0) << "the backing heap got back everything it gave";
  }
}

TEST(OutOfMemory, StlAndPmrAdaptersThrowBadAlloc) {
  sa::test::FailPlan plan;
  FailingPool h(FailingPool::Options{.pool = {.shards = 0}, .fallback = {.plan = &plan}});
  std::vector<int, sa::StlAllocator<int>> v{sa::StlAllocator<int>(h.allocator())};
  v.assign(1000, 7);
  plan.exhausted = true;
  EXPECT_THROW(v.resize(100000), std::bad_alloc);
  EXPECT_EQ(v.size(), 1000u);  // strong guarantee: the old contents stand
  EXPECT_EQ(v[999], 7);
  sa::MemoryResource res(h.allocator());
  EXPECT_THROW((void)res.allocate(10000, 8), std::bad_alloc);
  plan.exhausted = false;
  void* p = res.allocate(10000, 64);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
  res.deallocate(p, 10000, 64);
  v.clear();
  v.shrink_to_fit();
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(Adapters, StlContainersAndPmrUseTheHandle) {
  sa::AllocatorHandle h;
  {
    std::vector<std::uint64_t, sa::StlAllocator<std::uint64_t>> v{sa::StlAllocator<std::uint64_t>(h.allocator())};
    for (std::uint64_t i = 0; i < 10000; ++i) v.push_back(i);
    EXPECT_EQ(v[9999], 9999u);
    EXPECT_GE(h.leaks().blocks, 1u);
    sa::MemoryResource res(h.allocator());
    std::pmr::vector<int> pv(&res);
    for (int i = 0; i < 100; ++i) pv.push_back(i);
    EXPECT_EQ(pv[99], 99);
    EXPECT_TRUE(res.is_equal(res));
  }
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

}  // namespace
