// Built only into the ASan suite: a use-after-free inside the pool is reported
// by ASan, because freed pooled blocks are poisoned until handed out again.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

TEST(AsanPoison, UseAfterFreeOfAShardBlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Pool h(Pool::Options{.pool = {.shards = 2}});
  EXPECT_DEATH(
      {
        auto* p = static_cast<volatile char*>(h.alloc(48, 8));
        h.free(const_cast<char*>(p), 48, 8);
        p[20] = 1;
      },
      "use-after-poison");
}

TEST(AsanPoison, UseAfterFreeOfABucketBlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Pool h(Pool::Options{.pool = {.shards = 0}});
  EXPECT_DEATH(
      {
        auto* p = static_cast<volatile char*>(h.alloc(200, 8));
        h.free(const_cast<char*>(p), 200, 8);
        (void)p[199];
      },
      "use-after-poison");
}

TEST(AsanPoison, NeverCarvedSlabMemoryIsPoisonedToo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Pool h(Pool::Options{.pool = {.shards = 0}});
  EXPECT_DEATH(
      {
        auto* p = static_cast<volatile char*>(h.alloc(64, 8));
        (void)p[64 + 8];  // the next block has not been handed out
      },
      "use-after-poison");
}

TEST(AsanPoison, ABlockHandedOutAgainIsUsable) {
  Pool h(Pool::Options{.pool = {.shards = 2}});
  auto* p = static_cast<char*>(h.alloc(48, 8));
  h.free(p, 48, 8);
  // Allocations come back to p before its slab runs out: p handed out again,
  // unpoisoned, and every block before it usable too.
  std::vector<char*> taken;
  while (taken.size() < sa::slab_bytes / 48 && (taken.empty() || taken.back() != p))
    taken.push_back(static_cast<char*>(h.alloc(48, 8)));
  ASSERT_EQ(taken.back(), p);
  for (char* q : taken)
    for (int i = 0; i < 48; ++i) q[i] = 1;
  for (char* q : taken) h.free(q, 48, 8);
}

}  // namespace
