// small_pool's table: 16 B to 64 KiB in four steps per doubling (wide_spec).
// What the seed's 16-256 B table sent to the fallback is pooled now, and the
// caches in front of the slabs hold a bounded number of bytes of each large
// class.
#include <sydra/alloc/modes.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <cstdint>
#include <cstring>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
using Classes = Pool::Classes;

static_assert(Classes::count == 47 && Classes::max_size == 64 * 1024);
static_assert(std::is_same_v<sa::BasicAllocatorHandle<sa::SeedSmallPoolPolicy>::Classes, sa::SeedClasses>,
              "the seed's table stays a named choice");

TEST(WideTable, LooksUpTheSmallestClassThatFits) {
  EXPECT_EQ(Classes::sizes[0], 16u);
  EXPECT_EQ(Classes::sizes[Classes::class_of(257)], 320u);
  EXPECT_EQ(Classes::sizes[Classes::class_of(1024)], 1024u);
  EXPECT_EQ(Classes::sizes[Classes::class_of(1025)], 1280u);
  EXPECT_EQ(Classes::sizes[Classes::class_of(32769)], 40960u);
  EXPECT_EQ(Classes::sizes[Classes::class_of(65536)], 65536u);
  // Every class from 64 B on is a multiple of 16: alignment 16 costs nothing there.
  for (std::size_t c = Classes::class_of(64); c < Classes::count; ++c) EXPECT_EQ(Classes::sizes[c] % 16, 0u);
}

TEST(WideTable, PoolsEverySizeTo64KiBAndNothingAbove) {
  Pool h;
  for (std::size_t len : {257u, 1000u, 1024u, 4097u, 20000u, 32768u, 40000u, 65536u}) {
    for (std::size_t align : {8u, 16u}) {
      auto* p = static_cast<unsigned char*>(h.alloc(len, align));
      ASSERT_NE(p, nullptr) << len;
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << len;
      const sa::SlabMeta* m = sa::Pagemap::lookup(p);
      ASSERT_NE(m, nullptr) << len << " should be pooled";
      EXPECT_GE(m->block_size, len);
      EXPECT_LE(reinterpret_cast<char*>(p) + len, m->base + sa::slab_bytes) << "a block stays inside its slab";
      std::memset(p, 0x5A, len);
      EXPECT_EQ(h.usable_size(p), m->block_size);
      h.free(p, len, align);
    }
  }
  void* big = h.alloc(65537, 8);
  EXPECT_EQ(sa::Pagemap::lookup(big), nullptr) << "above the largest class: the fallback";
  h.free(big, 65537, 8);
  const sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(s.fallback.allocs, 1u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// A 64 KiB class has one block per slab and a 16 KiB class four; the blocks
// are distinct, whole and each in its own place.
TEST(WideTable, LargeClassesFillTheirSlabsWithoutOverlap) {
  Pool h;
  for (std::size_t len : {16384u, 40960u, 65536u}) {
    std::vector<unsigned char*> blocks;
    for (int i = 0; i < 24; ++i) {
      auto* p = static_cast<unsigned char*>(h.alloc(len, 16));
      ASSERT_NE(p, nullptr);
      std::memset(p, i + 1, len);
      blocks.push_back(p);
    }
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      for (std::size_t k = 0; k < len; k += 509) ASSERT_EQ(blocks[i][k], i + 1) << len << " block " << i;
      ASSERT_EQ(blocks[i][len - 1], i + 1);
      const sa::SlabMeta* m = sa::Pagemap::lookup(blocks[i]);
      EXPECT_EQ(m->capacity, sa::slab_bytes / m->block_size);
    }
    for (unsigned char* p : blocks) h.free(p, len, 16);
  }
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// A slab whose every block came back from another thread, taken back by a
// collect and kept as the class's spare, hands all of those blocks out again
// before the shard takes a new slab (found by the trim race under Valgrind:
// the taken blocks were dropped when the slab stayed).
TEST(WideTable, ASpareSlabKeepsTheRemoteFreesItTookBack) {
  Pool h;
  constexpr std::size_t len = 16384;  // four blocks to a slab
  std::vector<void*> first(4);
  for (void*& p : first) p = h.alloc(len, 8);
  const sa::SlabMeta* s = sa::Pagemap::lookup(first[0]);
  for (void* p : first) ASSERT_EQ(sa::Pagemap::lookup(p), s) << "one slab, full";
  void* extra = h.alloc(len, 8);  // the class moves on to a new current slab
  ASSERT_NE(sa::Pagemap::lookup(extra), s);
  std::thread([&] {
    for (void* p : first) h.free(p, len, 8);  // remote: onto the slab's thread_free
  }).join();
  EXPECT_EQ(h.collect_garbage(), 4u);
  EXPECT_EQ(s->kind, sa::SlabKind::shard) << "kept as the class's spare";
  std::vector<void*> again;
  std::size_t back = 0;
  while (back < first.size() && again.size() < 16) {
    again.push_back(h.alloc(len, 8));
    back += std::count(first.begin(), first.end(), again.back());
  }
  EXPECT_EQ(back, first.size()) << "every block the spare took back is handed out again";
  for (void* p : again) h.free(p, len, 8);
  h.free(extra, len, 8);
  h.trim(0);
  EXPECT_EQ(h.snapshot_stats().memory.in_use_bytes, 0u) << "no slab stays in use";
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// A thread that frees a burst of 64 KiB blocks keeps at most two of their
// slabs (its class's current slab and one spare, both empty): every other
// slab goes back to the pool the moment its one block does, and a trim
// gives back the two.
TEST(WideTable, AShardKeepsAtMostTwoEmptyLargeSlabs) {
  Pool h;
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(h.alloc(65536, 8));
  for (void* p : blocks) h.free(p, 65536, 8);
  const sa::Stats s = h.snapshot_stats();
  ASSERT_TRUE(s.has_shards);
  const unsigned cls = Classes::class_of(65536);
  std::uint64_t slabs = 0;
  for (const auto& sh : s.shards.shards) slabs += sh.classes[cls].slabs;
  EXPECT_LE(slabs, 2u) << "the current slab and a spare at most; every other slab went back";
  h.trim(0);
  std::uint64_t after = 0;
  for (const auto& sh : h.snapshot_stats().shards.shards) after += sh.classes[cls].slabs;
  EXPECT_EQ(after, 0u) << "trim() gives back the current slab and the spare";
  EXPECT_EQ(s.memory.in_use_bytes, slabs * sa::slab_bytes) << "no other slab stays in use";
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// The same bound for the per-CPU caches of threads without a shard.
TEST(WideTable, ACpuCacheHoldsABoundedNumberOfLargeBlocks) {
  Pool h(Pool::Options{.pool = {.shards = 0}});
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(h.alloc(65536, 8));
  for (void* p : blocks) h.free(p, 65536, 8);
  const sa::Stats s = h.snapshot_stats();
  const unsigned cls = Classes::class_of(65536);
  ASSERT_LT(cls, s.buckets.size());
  EXPECT_EQ(s.buckets[cls].in_use, 0u);
  // Per CPU at most 64 KiB of the class (2 blocks at the floor), and the
  // bucket's transfer stack at most 512 KiB (8 blocks): the rest are back in
  // the pool, one slab per block.
  EXPECT_LE(s.buckets[cls].cached, 2u * sa::pal::possible_cpus() + 8);
  EXPECT_EQ(s.buckets[cls].slabs, s.buckets[cls].cached);
  EXPECT_EQ(s.memory.in_use_bytes, s.buckets[cls].slabs * sa::slab_bytes);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

}  // namespace
