// Where the flat pagemap's 16 GiB of address space cannot be had: main()
// sets an RLIMIT_AS before anything is pooled, so the first insert of the
// process falls back to the two-level radix table, and the pool must work
// exactly as with the flat one. Its own executable: the choice is made once
// per process, and unit-small_pool's has long been made by then.
#include <sydra/alloc.hpp>

#include "../support/address_space.hpp"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <set>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

const char* limit_not_set = "RLIMIT_AS was not set (see main)";
const char* why_not = nullptr;

TEST(PagemapFallback, WithoutTheFlatTableTheRadixTableServes) {
  if (why_not != nullptr) GTEST_SKIP() << why_not;
  Pool h(Pool::Options{.pool = {.shards = 0}});
  // 64 MiB of 256-byte blocks: several chunks, so several radix leaves.
  std::vector<void*> blocks;
  std::set<const char*> slabs;
  for (std::size_t i = 0; i < (std::size_t{64} << 20) / 256; ++i) {
    void* p = h.alloc(256, 8);
    ASSERT_NE(p, nullptr);
    const sa::SlabMeta* m = sa::Pagemap::lookup(p);
    ASSERT_NE(m, nullptr) << "block " << i << " is not pooled";
    ASSERT_EQ(m->base, reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(p) & ~(sa::slab_bytes - 1)));
    slabs.insert(m->base);
    blocks.push_back(p);
  }
  EXPECT_FALSE(sa::Pagemap::flat()) << "the flat table fit under the limit: this test proves nothing";
  EXPECT_GE(slabs.size(), 1000u);
  EXPECT_EQ(sa::Pagemap::lookup(reinterpret_cast<void*>(std::uintptr_t{1} << 47)), nullptr);
  EXPECT_EQ(sa::Pagemap::lookup(reinterpret_cast<void*>(~std::uintptr_t{0})), nullptr);
  for (void* p : blocks) h.free(p, 256, 8);
  h.trim(0);  // every chunk empty and none retained: all go back, entries cleared first
  EXPECT_EQ(h.snapshot_stats().memory.reserved_bytes, 0u);
  for (void* p : blocks) ASSERT_EQ(sa::Pagemap::lookup(p), nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  using sa::test::address_space_bytes;
  if (sa::test::under_valgrind()) why_not = "Valgrind's own mappings count against RLIMIT_AS";
  // Room for the test's chunks and leaves, not for 16 GiB of table.
  const std::size_t limit = address_space_bytes() + (std::size_t{1} << 30);
  const rlimit r{limit, limit};
  if (why_not == nullptr && (address_space_bytes() == 0 || ::setrlimit(RLIMIT_AS, &r) != 0)) why_not = limit_not_set;
  return RUN_ALL_TESTS();
}
