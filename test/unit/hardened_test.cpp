// A hardened policy (static constexpr bool hardened = true): a double free
// of a cached block aborts in every build, and an overwritten link inside a
// freed block aborts as a corrupted free list instead of being followed.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace sa = sydra::alloc;

namespace {

struct HardenedPool : sa::SmallPoolPolicy {
  static constexpr const char* name = "hardened";
  static constexpr bool hardened = true;
};
using Hardened = sa::BasicAllocatorHandle<HardenedPool>;
static_assert(Hardened::hardened && !sa::BasicAllocatorHandle<sa::SmallPoolPolicy>::hardened);

// What a use-after-free does to a freed block: writes into it (past ASan's
// poisoning, as a real bug in an unsanitized build would).
SYDRA_NO_ASAN void scribble(void* p) {
  *static_cast<volatile std::uint64_t*>(p) = 0x4141414141414141ull;
}

TEST(Hardened, WorksLikeTheUnhardenedPolicy) {
  Hardened h;
  std::vector<void*> blocks;
  for (int i = 0; i < 5000; ++i) {
    auto* p = static_cast<std::uint64_t*>(h.alloc(16 + static_cast<std::size_t>(i % 240), 8));
    ASSERT_NE(p, nullptr);
    *p = 0;  // user data that is not the canary
    blocks.push_back(p);
  }
  for (std::size_t i = 0; i < blocks.size(); ++i) h.free(blocks[i], 16 + i % 240, 8);
  h.trim();
  for (int i = 0; i < 5000; ++i) blocks[static_cast<std::size_t>(i)] = h.alloc(16 + static_cast<std::size_t>(i % 240), 8);
  for (std::size_t i = 0; i < blocks.size(); ++i) h.free(blocks[i], 16 + i % 240, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

using HardenedDeathTest = ::testing::Test;

TEST_F(HardenedDeathTest, ADoubleFreeOfACachedBlockAbortsInEveryBuild) {
  EXPECT_DEATH(
      {
        Hardened h;
        void* p = h.alloc(64, 8);
        h.free(p, 64, 8);
        h.free(p, 64, 8);
      },
      "double free");
}

TEST_F(HardenedDeathTest, RetireOfAFreedBlockAborts) {
  EXPECT_DEATH(
      {
        Hardened h;
        void* p = h.alloc(64, 8);
        h.free(p, 64, 8);
        h.retire(p, 64, 8);
      },
      "double free|retire of a freed pooled block");
}

TEST_F(HardenedDeathTest, AnOverwrittenFreeListLinkIsCaughtNotFollowed) {
  EXPECT_DEATH(
      {
        Hardened h(Hardened::Options{.pool = {.shards = 0}});
        std::vector<void*> blocks;
        for (int i = 0; i < 4096; ++i) blocks.push_back(h.alloc(48, 8));
        std::vector<void*> freed;
        for (std::size_t i = 0; i < blocks.size(); i += 2) {  // half of each slab stays live
          h.free(blocks[i], 48, 8);
          freed.push_back(blocks[i]);
        }
        h.trim(std::size_t{1} << 30);  // caches back to the slabs' free lists; nothing decommitted
        for (void* p : freed) scribble(p);  // a use after free writes into every freed block
        for (int i = 0; i < 4096; ++i) h.alloc(48, 8);
      },
      "corrupted free list");
}

}  // namespace
