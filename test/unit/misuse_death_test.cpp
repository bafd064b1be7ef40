// Misuse in checked builds: each case aborts with a message naming it, before
// any free list is touched. Compiled only into checked builds (the test
// command's builds are all checked); release builds trust the caller.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

namespace sa = sydra::alloc;

namespace {

static_assert(sa::checked, "misuse tests need a checked build (-Dchecked=true)");

class Misuse : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  sa::AllocatorHandle h;
};

constexpr std::size_t pooled = 32;    // a bucket/shard block in small_pool
constexpr std::size_t large = 100000; // a fallback block in every mode (above 64 KiB)

TEST_F(Misuse, DoubleFree) {
  for (std::size_t len : {pooled, large}) {
    void* p = h.alloc(len, 8);
    h.free(p, len, 8);
    EXPECT_DEATH(h.free(p, len, 8), "sydra-alloc: double free") << len;
  }
}

TEST_F(Misuse, DelayedDoubleFree) {
  for (std::size_t len : {pooled, large}) {
    void* p = h.alloc(len, 8);
    void* q = h.alloc(len, 8);
    h.free(p, len, 8);
    h.free(q, len, 8);
    EXPECT_DEATH(h.free(p, len, 8), "sydra-alloc: double free") << len;
  }
}

TEST_F(Misuse, ForeignPointers) {
  alignas(16) static char static_block[64];
  alignas(16) char stack_block[64];
  EXPECT_DEATH(h.free(stack_block, pooled, 8), "sydra-alloc: foreign pointer");
  EXPECT_DEATH(h.free(static_block, pooled, 8), "sydra-alloc: foreign pointer");
  void* from_malloc = std::malloc(large);
  EXPECT_DEATH(h.free(from_malloc, large, 8), "sydra-alloc: foreign pointer");
  std::free(from_malloc);
  sa::AllocatorHandle other;
  for (std::size_t len : {pooled, large}) {
    void* theirs = other.alloc(len, 8);
    EXPECT_DEATH(h.free(theirs, len, 8), "sydra-alloc: foreign pointer") << len;
    other.free(theirs, len, 8);
  }
}

TEST_F(Misuse, InteriorPointer) {
  for (std::size_t len : {pooled, large}) {
    auto* p = static_cast<char*>(h.alloc(len, 8));
    EXPECT_DEATH(h.free(p + 8, len, 8), "sydra-alloc: interior pointer") << len;
    h.free(p, len, 8);
  }
}

TEST_F(Misuse, SizedFreeWithTheWrongSize) {
  void* p = h.alloc(17, 8);
  EXPECT_DEATH(h.free(p, 16, 8), "sydra-alloc: size mismatch");
  h.free(p, 17, 8);
  void* q = h.alloc(256, 8);
  EXPECT_DEATH(h.free(q, 257, 8), "sydra-alloc: size mismatch");
  h.free(q, 256, 8);
  void* r = h.alloc(large, 8);
  EXPECT_DEATH(h.free(r, large - 1, 8), "sydra-alloc: size mismatch");
  h.free(r, large, 8);
}

TEST_F(Misuse, FreeThroughTheWrongPath) {
  // Over-aligned (a fallback block in small_pool) freed as a small one...
  void* p = h.alloc(16, 64);
  EXPECT_DEATH(h.free(p, 16, 8), "sydra-alloc: alignment mismatch");
  h.free(p, 16, 64);
  // ...and a small one freed as over-aligned.
  void* q = h.alloc(16, 8);
  EXPECT_DEATH(h.free(q, 16, 64), "sydra-alloc: alignment mismatch");
  h.free(q, 16, 8);
}

TEST_F(Misuse, CrossThreadDoubleFree) {
  EXPECT_DEATH(
      {
        void* p = h.alloc(pooled, 8);
        std::thread([&] { h.free(p, pooled, 8); }).join();
        std::thread([&] { h.free(p, pooled, 8); }).join();
      },
      "sydra-alloc: double free");
}

TEST_F(Misuse, ResizeOrRemapOfAFreedBlock) {
  for (std::size_t len : {pooled, large}) {
    void* p = h.alloc(len, 8);
    h.free(p, len, 8);
    EXPECT_DEATH((void)h.resize(p, len, 8, len), "sydra-alloc: double free") << len;
    EXPECT_DEATH((void)h.remap(p, len, 8, len * 3), "sydra-alloc: double free") << len;
  }
}

// After all that, the handle is intact: the failed frees touched nothing.
TEST_F(Misuse, TheHandleIsUntouchedByRefusedFrees) {
  void* p = h.alloc(pooled, 8);
  h.free(p, pooled, 8);
  EXPECT_DEATH(h.free(p, pooled, 8), "double free");
  void* a = h.alloc(pooled, 8);
  void* b = h.alloc(pooled, 8);
  EXPECT_NE(a, b);
  h.free(a, pooled, 8);
  h.free(b, pooled, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

}  // namespace
