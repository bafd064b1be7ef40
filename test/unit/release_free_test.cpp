// What a free does with a wrong claim in every build (the pagemap lookup the
// free makes pays for these checks) and, in release builds, where the
// caller's length is trusted only as far as the slab agrees: a wrong length
// frees the right block, and counts that the length throws off are floored
// and reported, never wrapped. Misuse that only checked builds diagnose is in
// misuse_death_test.cpp.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <vector>

#include <cstring>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

TEST(EveryBuildDeathTest, AnotherHandlesPooledBlockAborts) {
  Pool a;
  Pool b;
  void* p = a.alloc(64, 8);
  ASSERT_NE(p, nullptr);
  EXPECT_DEATH(b.free(p, 64, 8), "sydra-alloc: foreign pointer: block belongs to another handle");
  a.free(p, 64, 8);
}

TEST(EveryBuildDeathTest, AnInteriorPointerAborts) {
  Pool h;
  auto* p = static_cast<char*>(h.alloc(64, 8));
  ASSERT_NE(p, nullptr);
  EXPECT_DEATH(h.free(p + 16, 64, 8), "sydra-alloc: interior pointer");
  h.free(p, 64, 8);
}

// The free fast path's "starts a block" check is a 32-bit multiply by the
// slab's magic on the address's low 16 bits (slabs are 64 KiB-aligned). It
// must say exactly "offset % block size == 0" for every class of both named
// tables and every offset in a slab: a false yes frees a block that is not
// one, a false no aborts a correct free.
TEST(EveryBuild, TheSlabsOffsetCheckIsDivisibilityForEveryClassAndOffset) {
  auto check = [](const auto& sizes) {
    for (const std::uint32_t size : sizes) {
      sa::SlabMeta m{};
      m.block_size = size;
      m.block_magic = sa::SlabMeta::magic_of(size);
      const std::uintptr_t base = std::uintptr_t{0x7f1234560000};  // 64 KiB-aligned; never read
      static_assert(0x7f1234560000 % sa::slab_bytes == 0);
      std::size_t mismatches = 0;
      for (std::uint32_t off = 0; off < sa::slab_bytes; ++off)
        mismatches += m.starts_block(reinterpret_cast<const void*>(base + off)) != (off % size == 0);
      EXPECT_EQ(mismatches, 0u) << "block size " << size;
    }
  };
  check(sa::WideClasses::sizes);
  check(sa::SeedClasses::sizes);
}

#if !SYDRA_ALLOC_CHECKED
// Release builds only: a checked build aborts on these (misuse_death_test.cpp).

TEST(ReleaseFree, AWrongLengthFreesTheBlockOfItsSlabsClass) {
  Pool h(Pool::Options{.print_leaks = false});
  void* p = h.alloc(100, 8);  // class 104 or 112, not 40's
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x11, 100);
  h.free(p, 40, 8);  // the slab, not the length, names the class
  void* small = h.alloc(40, 8);
  EXPECT_NE(small, p) << "a 100-B block was handed out as a 40-B one";
  // It went back to its own slab: a 100-B allocation hands it out again
  // before that slab's other blocks run out.
  std::vector<void*> again;
  while (again.size() < sa::slab_bytes / 100 && (again.empty() || again.back() != p)) again.push_back(h.alloc(100, 8));
  EXPECT_EQ(again.back(), p) << "the block did not go back to its own class";
  h.free(small, 40, 8);
  for (void* q : again) h.free(q, 100, 8);
  const sa::LeakReport r = h.leaks();
  EXPECT_EQ(r.blocks, 0u);
  EXPECT_FALSE(r.underflow);
}

TEST(ReleaseFree, APointerInNoSlabGoesToTheFallbackWhateverTheLength) {
  Pool h(Pool::Options{.print_leaks = false});
  void* big = h.alloc(100000, 8);  // a fallback block (above 64 KiB)
  ASSERT_NE(big, nullptr);
  std::memset(big, 0x22, 100000);
  h.free(big, 64, 8);  // a pooled length: still the fallback's free, no crash
  void* over = h.alloc(64, 4096);  // over-aligned: the fallback's too
  ASSERT_NE(over, nullptr);
  h.free(over, 64, 8);
  const sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(s.fallback.allocs, 2u);
  EXPECT_EQ(s.fallback.frees, 2u) << "both frees reached the fallback";
  EXPECT_EQ(h.leaks().blocks, 0u);
}

TEST(ReleaseFree, CountsThatAWrongLengthThrowsOffAreFlooredAndReported) {
  Pool h(Pool::Options{.print_leaks = false});
  void* p = h.alloc(70000, 8);  // fallback (above 64 KiB)
  ASSERT_NE(p, nullptr);
  h.free(p, 500000, 8);  // counted as 500000 bytes out against 70000 in
  const sa::LeakReport r = h.leaks();
  EXPECT_TRUE(r.underflow);
  EXPECT_EQ(r.blocks, 0u);
  EXPECT_EQ(r.bytes, 0u) << "floored at zero, not wrapped";
  EXPECT_TRUE(h.snapshot_stats().fallback.counts_underflow);
}
#endif

}  // namespace
