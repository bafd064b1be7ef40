// A handle's destruction while it still holds work: open and sealed retire
// bags, bound threads that are idle. Reclaiming at destruction runs the
// handle's own free, which must need no thread binding and take no lock that
// the destruction already holds. (Found in review: a deadlock and a
// use-after-free, before the layer stopped binding threads on shutdown.)
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

// Another thread allocates, retires under a pin, unpins and stays alive while
// a thread that never used the handle destroys it.
void destroy_while_another_thread_holds_an_open_bag(std::size_t len) {
  auto h = std::make_unique<Pool>();
  std::atomic<int> phase{0};
  std::thread t([&] {
    void* p = h->alloc(len, 8);
    ASSERT_NE(p, nullptr);
    {
      auto g = h->pin();
      ASSERT_TRUE(g);
      ASSERT_TRUE(h->retire(p, len, 8));
    }
    phase = 1;
    while (phase.load() != 2) std::this_thread::yield();
  });
  while (phase.load() != 1) std::this_thread::yield();
  sa::LeakReport report{99, 99};
  h.reset();  // must neither hang nor touch freed per-thread state
  phase = 2;
  t.join();
  (void)report;
}

TEST(Shutdown, AnotherThreadsOpenRetireBagOfAPooledBlock) { destroy_while_another_thread_holds_an_open_bag(64); }
TEST(Shutdown, AnotherThreadsOpenRetireBagOfAFallbackBlock) { destroy_while_another_thread_holds_an_open_bag(100000); }

TEST(Shutdown, RetiredUnderAPinThenDestroyedByTheSameThread) {
  sa::LeakReport report{99, 99};
  {
    Pool h(Pool::Options{.leak_report = &report});
    void* p[200];
    for (auto& x : p) x = h.alloc(64, 8);
    {
      auto g = h.pin();
      ASSERT_TRUE(g);
      for (auto& x : p) ASSERT_TRUE(h.retire(x, 64, 8));
      EXPECT_EQ(h.collect_garbage(), 0u);  // sealed while pinned: held back
    }
    EXPECT_EQ(h.snapshot_stats().shards.retired_pending, 200u);
  }
  EXPECT_EQ(report, sa::LeakReport{}) << "destruction reclaims every retired block";
}

TEST(Shutdown, IdleBoundThreadsKeepTheirBlocksCounted) {
  sa::LeakReport report{99, 99};
  std::atomic<int> phase{0};
  std::thread t;
  {
    Pool h(Pool::Options{.leak_report = &report, .print_leaks = false});
    t = std::thread([&] {
      void* kept = h.alloc(48, 8);  // a block the thread never frees: a leak the report must show
      void* freed = h.alloc(48, 8);
      h.free(freed, 48, 8);
      (void)kept;
      phase = 1;
      while (phase.load() != 2) std::this_thread::yield();
    });
    while (phase.load() != 1) std::this_thread::yield();
  }
  EXPECT_EQ(report, (sa::LeakReport{1, 48}));
  phase = 2;
  t.join();
}

}  // namespace
