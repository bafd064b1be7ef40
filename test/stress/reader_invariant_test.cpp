// The epoch invariant under load: 4 writers replace nodes in shared slots
// and retire the old ones (collection left to retire's own amortised
// collection, plus an occasional collect_garbage()), while 4 readers pin,
// read a node many times and check it. Every node the allocator hands out is
// poisoned before it is initialised, so a node reused while a reader that
// could still see it is pinned shows up as a broken sentinel or payload.
// Bounded in time; prints its seed (SYDRA_STRESS_SEED replays it).
#include <sydra/alloc.hpp>
#include "../support/stress_params.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

struct Node {
  std::atomic<std::uint64_t> sentinel;  // first, where a lock-free list keeps `next`
  std::atomic<std::uint64_t> payload[7];
};
static_assert(sizeof(Node) == 64);
constexpr std::uint64_t sentinel_value = 0x5E471E15E471E1ull;
constexpr std::uint64_t poison_value = 0xDEADDEADDEADDEADull;


TEST(ReaderInvariant, FourWritersRetiringFourReadersPinned) {
  constexpr int writers = 4, readers = 4;
  constexpr std::size_t slots_n = 16;
  Pool h(Pool::Options{.pool = {.shards = 4}});
  const unsigned s = sa::test::stress_seed();
  const auto run_for = std::chrono::milliseconds(static_cast<long>(800 * sa::test::stress_scale()));
  std::printf("reader invariant seed=%u writers=%d readers=%d run=%lldms\n", s, writers, readers,
              static_cast<long long>(run_for.count()));
  std::fflush(stdout);

  auto make_node = [&](std::uint64_t tag) {
    auto* n = static_cast<Node*>(h.alloc(sizeof(Node), alignof(Node)));
    n->sentinel.store(poison_value, std::memory_order_relaxed);  // the block may be a recycled one
    for (auto& p : n->payload) p.store(poison_value, std::memory_order_relaxed);
    for (auto& p : n->payload) p.store(tag, std::memory_order_relaxed);
    n->sentinel.store(sentinel_value, std::memory_order_release);
    return n;
  };
  std::vector<std::atomic<Node*>> slots(slots_n);
  for (std::size_t i = 0; i < slots_n; ++i) slots[i].store(make_node(i));

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> violations{0}, checks{0}, retired{0}, pins{0};
  std::vector<std::thread> ts;
  for (int r = 0; r < readers; ++r)
    ts.emplace_back([&, r] {
      std::mt19937 rng(s + 100 + static_cast<unsigned>(r));
      while (!stop.load(std::memory_order_relaxed)) {
        auto g = h.pin();
        ASSERT_TRUE(g) << g.why();
        pins.fetch_add(1, std::memory_order_relaxed);
        Node* n = slots[rng() % slots_n].load(std::memory_order_acquire);
        const std::uint64_t tag = n->payload[0].load(std::memory_order_relaxed);
        // Mostly short pins; one in eight long enough (thousands of reads,
        // with yields) to span several bags sealing and being collected.
        const int reads = rng() % 8 == 0 ? 2000 + static_cast<int>(rng() % 4000) : 1 + static_cast<int>(rng() % 64);
        for (int i = 0; i < reads; ++i) {
          if (n->sentinel.load(std::memory_order_acquire) != sentinel_value) violations.fetch_add(1);
          for (auto& p : n->payload)
            if (p.load(std::memory_order_relaxed) != tag) violations.fetch_add(1);
          checks.fetch_add(1, std::memory_order_relaxed);
          if (i % 256 == 255) std::this_thread::yield();
        }
        if (rng() % 16 == 0) std::this_thread::yield();  // stay pinned across a reschedule
      }
    });
  for (int w = 0; w < writers; ++w)
    ts.emplace_back([&, w] {
      std::mt19937 rng(s + static_cast<unsigned>(w));
      const auto deadline = std::chrono::steady_clock::now() + run_for;
      std::uint64_t tag = static_cast<std::uint64_t>(w) << 48;
      while (std::chrono::steady_clock::now() < deadline) {
        Node* fresh = make_node(++tag);
        Node* old = slots[rng() % slots_n].exchange(fresh, std::memory_order_acq_rel);
        ASSERT_TRUE(h.retire(old, sizeof(Node), alignof(Node)));
        retired.fetch_add(1, std::memory_order_relaxed);
        if (rng() % 1024 == 0) h.collect_garbage();
      }
    });
  for (int w = 0; w < writers; ++w) ts[static_cast<std::size_t>(readers + w)].join();
  stop = true;
  for (int r = 0; r < readers; ++r) ts[static_cast<std::size_t>(r)].join();

  for (auto& slot : slots) h.free(slot.load(), sizeof(Node), alignof(Node));
  h.collect_garbage();
  h.collect_garbage();
  const sa::Stats st = h.snapshot_stats();
  std::printf("retired=%llu checks=%llu pins=%llu\n", static_cast<unsigned long long>(retired.load()),
              static_cast<unsigned long long>(checks.load()), static_cast<unsigned long long>(pins.load()));
  EXPECT_EQ(violations.load(), 0u) << "a retired node was reused while a reader was pinned; seed " << s;
  EXPECT_GT(retired.load(), 1000u);
  EXPECT_GT(checks.load(), 1000u);
  EXPECT_EQ(st.shards.retired, retired.load());
  EXPECT_EQ(st.shards.retired_pending, 0u);
  EXPECT_EQ(st.shards.pinned_threads, 0u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{}) << "seed " << s;
}

}  // namespace
