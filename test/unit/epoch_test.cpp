// Epoch-based reclamation: pins hold back reuse, advance waits for pinned
// threads, retire() defers even local frees, and the invariant holds against
// a live reader.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
Pool::Options with_shards(std::size_t n) { return Pool::Options{.pool = {.shards = n}}; }

// Another thread, pinned from construction until leave().
class PinnedReader {
 public:
  explicit PinnedReader(Pool& h) : thread_([this, &h] {
    const auto e = h.enter_epoch();
    stage_ = 1;
    while (stage_.load() != 2) std::this_thread::yield();
    h.leave_epoch(*e);
  }) {
    while (stage_.load() != 1) std::this_thread::yield();
  }
  void leave() {
    stage_ = 2;
    thread_.join();
  }
  ~PinnedReader() {
    if (thread_.joinable()) leave();
  }

 private:
  std::atomic<int> stage_{0};
  std::thread thread_;
};

TEST(Epochs, EnterReturnsTheCurrentEpochAndLeaveUnpins) {
  Pool h(with_shards(2));
  const auto e = h.enter_epoch();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(*e, 1u);
  sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(s.shards.pinned_threads, 1u);
  EXPECT_EQ(s.shards.min_pinned_epoch, 1u);
  h.leave_epoch(*e);
  s = h.snapshot_stats();
  EXPECT_EQ(s.shards.pinned_threads, 0u);
  EXPECT_EQ(s.shards.min_pinned_epoch, 0u);
}

TEST(Epochs, AdvanceWaitsForEveryPinnedThread) {
  Pool h(with_shards(2));
  PinnedReader reader(h);
  EXPECT_EQ(h.advance_epoch(), 2u);  // the reader has seen epoch 1: one step is allowed
  EXPECT_EQ(h.advance_epoch(), 2u);  // but not another while it is pinned at 1
  EXPECT_EQ(h.advance_epoch(), 2u);
  reader.leave();
  EXPECT_EQ(h.advance_epoch(), 3u);
}

TEST(Epochs, NestedPinsKeepTheOuterEpoch) {
  Pool h(with_shards(1));
  const auto outer = h.enter_epoch();
  h.advance_epoch();
  const auto inner = h.enter_epoch();
  EXPECT_EQ(inner, outer);
  h.leave_epoch(*inner);
  EXPECT_EQ(h.snapshot_stats().shards.pinned_threads, 1u);
  h.leave_epoch(*outer);
  EXPECT_EQ(h.snapshot_stats().shards.pinned_threads, 0u);
}

TEST(Epochs, APinnedReaderHoldsBackDeferredFreesUntilItLeaves) {
  Pool h(with_shards(2));
  std::vector<void*> blocks;
  for (int i = 0; i < 20; ++i) blocks.push_back(h.alloc(64, 8));
  PinnedReader reader(h);
  std::thread([&] {
    for (void* p : blocks) h.free(p, 64, 8);  // remote: deferred at the current epoch
  }).join();
  EXPECT_EQ(h.collect_garbage(), 0u);
  EXPECT_EQ(h.collect_garbage(), 0u);
  EXPECT_EQ(h.snapshot_stats().shards.backlog, 20u);
  // The owner's own refill must not reuse them either.
  std::vector<void*> fresh;
  for (int i = 0; i < 20; ++i) fresh.push_back(h.alloc(64, 8));
  for (void* p : fresh) EXPECT_EQ(std::count(blocks.begin(), blocks.end(), p), 0);
  reader.leave();
  EXPECT_EQ(h.collect_garbage(), 20u);
  for (void* p : fresh) h.free(p, 64, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(Epochs, RetireDefersEvenALocalFreeAndLeavesTheBlockUntouched) {
  Pool h(with_shards(1));
  auto* shard_block = static_cast<unsigned char*>(h.alloc(32, 8));
  auto* fallback_block = static_cast<unsigned char*>(h.alloc(100000, 8));
  std::memset(shard_block, 0xAB, 32);
  std::memset(fallback_block, 0xCD, 100000);
  const auto e = h.enter_epoch();
  EXPECT_TRUE(h.retire(shard_block, 32, 8));
  EXPECT_TRUE(h.retire(fallback_block, 100000, 8));
  EXPECT_EQ(h.collect_garbage(), 0u);  // we are pinned ourselves
  // Pinned readers may still read every byte, the first ones included.
  for (int i = 0; i < 32; ++i) ASSERT_EQ(shard_block[i], 0xAB) << i;
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(fallback_block[i], 0xCD) << i;
  EXPECT_EQ(h.leaks(), (sa::LeakReport{2, 32 + 100000}));  // still the caller's until reclaimed
  void* fresh = h.alloc(32, 8);
  EXPECT_NE(fresh, shard_block);  // not handed out while retired
  h.free(fresh, 32, 8);
  h.leave_epoch(*e);
  EXPECT_EQ(h.collect_garbage(), 2u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
  const sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(s.shards.deferred_total, 0u);  // our own shard's block came back locally
  EXPECT_EQ(s.fallback.frees, 1u);
}

// collect_garbage() counts what it reclaims, the blocks of the caller's own
// open retire bag included, and moves the epoch once. (Found by the fuzzer:
// sealing the caller's bag once collected it on the side, uncounted, and
// advanced the epoch a second time.)
TEST(Epochs, CollectGarbageCountsTheCallersOpenBagAndAdvancesOnce) {
  Pool h(with_shards(1));
  void* p = h.alloc(32, 8);
  ASSERT_TRUE(h.retire(p, 32, 8));
  const auto before = h.snapshot_stats().shards.current_epoch;
  EXPECT_EQ(h.collect_garbage(), 1u);
  EXPECT_EQ(h.snapshot_stats().shards.current_epoch, before + 1);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(Epochs, AThreadThatExitsWhilePinnedIsUnpinned) {
  Pool h(with_shards(1));
  std::thread([&] { (void)h.enter_epoch(); }).join();
  EXPECT_EQ(h.snapshot_stats().shards.pinned_threads, 0u);
  EXPECT_EQ(h.advance_epoch(), 2u);
}

// The invariant, against a live reader (liburcu's test_urcu_gc, in our
// terms): a writer keeps replacing a published node and retiring the old one;
// every node it receives from the allocator is poisoned before it is
// initialised. A pinned reader checks the sentinel of the node it loaded, many
// times. If a retired node were handed out while the reader was still pinned
// at or before its retire epoch, the reader would see the poison. In checked
// builds the reclaimer also junk-fills every block it makes reusable.
struct Node {
  std::atomic<std::uint64_t> sentinel;  // first, where a lock-free list keeps `next`
  std::atomic<std::uint64_t> payload[5];
};
static_assert(sizeof(Node) <= 64);
constexpr std::uint64_t sentinel_value = 0x5E471E15E471E1ull;
constexpr std::uint64_t poison_value = 0xDEADDEADDEADDEADull;

TEST(Epochs, InvariantHoldsForAPinnedReader) {
  Pool h(with_shards(2));
  const unsigned seed = static_cast<unsigned>(std::random_device{}());
  std::printf("epoch invariant seed=%u\n", seed);
  std::atomic<Node*> current{nullptr};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> violations{0}, checks{0}, reclaimed{0};

  auto make_node = [&] {
    auto* n = static_cast<Node*>(h.alloc(sizeof(Node), 8));
    n->sentinel.store(poison_value, std::memory_order_relaxed);  // the block may be a recycled one
    for (auto& p : n->payload) p.store(poison_value, std::memory_order_relaxed);
    n->sentinel.store(sentinel_value, std::memory_order_release);
    return n;
  };
  current.store(make_node());

  std::thread reader([&] {
    std::mt19937 rng(seed);
    while (!stop.load(std::memory_order_relaxed)) {
      const auto e = h.enter_epoch();
      Node* n = current.load(std::memory_order_acquire);
      const int reads = 1 + static_cast<int>(rng() % 200);
      for (int i = 0; i < reads; ++i) {
        if (n->sentinel.load(std::memory_order_acquire) != sentinel_value) violations.fetch_add(1);
        checks.fetch_add(1, std::memory_order_relaxed);
      }
      if (rng() % 8 == 0) std::this_thread::yield();  // stay pinned across a reschedule
      h.leave_epoch(*e);
    }
  });

  std::thread writer([&] {
    std::mt19937 rng(seed + 1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
    int i = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      Node* fresh = make_node();
      Node* old = current.exchange(fresh, std::memory_order_acq_rel);
      ASSERT_TRUE(h.retire(old, sizeof(Node), 8));
      if (++i % 64 == 0 || rng() % 16 == 0) reclaimed.fetch_add(h.collect_garbage());
    }
    stop = true;
  });
  writer.join();
  reader.join();

  Node* last = current.load();
  h.free(last, sizeof(Node), 8);
  h.collect_garbage();
  const sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(violations.load(), 0u) << "a deferred block was reused while a reader was pinned";
  EXPECT_GT(checks.load(), 1000u);
  EXPECT_GT(reclaimed.load(), 100u) << "reclamation must actually have happened during the test";
  EXPECT_EQ(s.shards.backlog, 0u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

}  // namespace

namespace {

using GuardPool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
static_assert(!std::is_copy_constructible_v<sa::EpochGuard<GuardPool>>);
static_assert(!std::is_copy_assignable_v<sa::EpochGuard<GuardPool>>);
static_assert(std::is_nothrow_move_constructible_v<sa::EpochGuard<GuardPool>>);

std::uint64_t pinned(GuardPool& h) { return h.snapshot_stats().shards.pinned_threads; }

TEST(EpochGuard, PinsForItsScopeAndAMovedGuardUnpinsOnce) {
  GuardPool h;
  {
    auto g = h.pin();
    ASSERT_TRUE(g) << g.why();
    EXPECT_STREQ(g.why(), "pinned");
    EXPECT_EQ(pinned(h), 1u);
    EXPECT_EQ(g.epoch(), h.snapshot_stats().shards.min_pinned_epoch);
    auto moved = std::move(g);
    EXPECT_FALSE(g);  // NOLINT(bugprone-use-after-move): the moved-from guard is empty by contract
    EXPECT_TRUE(moved);
    EXPECT_EQ(pinned(h), 1u);
    moved.release();
    EXPECT_FALSE(moved);
    EXPECT_EQ(pinned(h), 0u);
  }  // both destructors run: neither unpins again (a checked build would abort on a second leave)
  EXPECT_EQ(pinned(h), 0u);
  {
    auto g = h.pin();
    EXPECT_EQ(pinned(h), 1u);
  }
  EXPECT_EQ(pinned(h), 0u);
}

TEST(EpochGuard, EmptyAndSaysWhyWithoutAShardManager) {
  GuardPool h(GuardPool::Options{.pool = {.shards = 0}});
  auto g = h.pin();
  EXPECT_FALSE(g);
  EXPECT_NE(std::strstr(g.why(), "no shard manager"), nullptr) << g.why();
}

TEST(EpochGuard, EmptyAndSaysHowToOptInWhereThePolicyHasNoEpochs) {
  sa::BasicAllocatorHandle<sa::DefaultPolicy> h;
  auto g = h.pin();
  EXPECT_FALSE(g);
  EXPECT_NE(std::strstr(g.why(), "no epochs"), nullptr) << g.why();
  EXPECT_NE(std::strstr(g.why(), ".epochs = true"), nullptr) << g.why();
}

}  // namespace
