// Out of memory, then recovery: empty chunks go back whole (address space,
// metadata and pagemap entries), at trim() and before an allocation that
// failed is retried, so that after an out-of-memory and the frees both pooled
// and fallback allocations succeed again. The last test does it for real,
// under a reduced RLIMIT_AS in a forked child.
#include <sydra/alloc.hpp>

#include "../support/address_space.hpp"
#include "../support/failing_heap.hpp"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
using FailingPool = sa::BasicAllocatorHandle<sa::test::FailingSmallPool>;

TEST(ChunkRelease, TrimReleasesEmptyChunksAndClearsTheirPagemapEntries) {
  // 1 MiB chunks (no doubling), so a few MiB of blocks span several.
  Pool h(Pool::Options{.pool = {.shards = 1, .slabs = {.chunk_bytes = std::size_t{1} << 20,
                                                       .max_chunk_bytes = std::size_t{1} << 20,
                                                       .retain_bytes = 0}}});
  std::vector<void*> blocks((std::size_t{6} << 20) / 128);
  for (void*& p : blocks) {
    p = h.alloc(128, 8);
    ASSERT_NE(p, nullptr);
  }
  const sa::MemoryStats full = h.snapshot_stats().memory;
  ASSERT_GE(full.chunks, 6u);
  void* keep = blocks.front();  // one live block keeps its chunk
  for (std::size_t i = 1; i < blocks.size(); ++i) h.free(blocks[i], 128, 8);
  h.trim(0);
  const sa::MemoryStats m = h.snapshot_stats().memory;
  EXPECT_EQ(m.reserved_bytes, std::size_t{1} << 20) << "only the chunk holding a live block stays";
  EXPECT_EQ(m.chunks - m.chunks_released, 1u);
  EXPECT_EQ(m.in_use_bytes, sa::slab_bytes);
  EXPECT_LT(m.metadata_bytes, full.metadata_bytes);
  ASSERT_NE(sa::Pagemap::lookup(keep), nullptr);
  EXPECT_EQ(sa::Pagemap::lookup(keep)->kind, sa::SlabKind::shard);
  // A freed block's address in a released chunk maps to no slab: only the
  // addresses inside the one kept chunk (1 MiB) still do.
  std::size_t still_mapped = 0;
  for (std::size_t i = 1; i < blocks.size(); ++i) still_mapped += sa::Pagemap::lookup(blocks[i]) != nullptr;
  EXPECT_LT(still_mapped, (std::size_t{1} << 20) / 128);
  // The pool grows again from nothing.
  for (void*& p : blocks) {
    p = h.alloc(128, 8);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x11, 128);
  }
  for (void* p : blocks) h.free(p, 128, 8);
  h.free(keep, 128, 8);
  h.trim(0);
  EXPECT_EQ(h.snapshot_stats().memory.reserved_bytes, 0u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// trim() keeps the retain budget committed, so a chunk holding a retained
// slab stays; trim(0) then releases it.
TEST(ChunkRelease, TrimKeepsChunksHoldingRetainedSlabs) {
  Pool h(Pool::Options{.pool = {.shards = 0, .slabs = {.chunk_bytes = std::size_t{1} << 20,
                                                       .max_chunk_bytes = std::size_t{1} << 20,
                                                       .retain_bytes = 2 * sa::slab_bytes}}});
  std::vector<void*> blocks((std::size_t{3} << 20) / 256);
  for (void*& p : blocks) p = h.alloc(256, 8);
  for (void* p : blocks) h.free(p, 256, 8);
  h.trim();
  sa::MemoryStats m = h.snapshot_stats().memory;
  EXPECT_EQ(m.retained_bytes, 2 * sa::slab_bytes);
  EXPECT_GE(m.reserved_bytes, std::size_t{1} << 20) << "the retained slabs' chunk stays";
  EXPECT_LE(m.reserved_bytes, std::size_t{2} << 20);
  EXPECT_GE(m.chunks_released, 1u);
  h.trim(0);
  m = h.snapshot_stats().memory;
  EXPECT_EQ(m.reserved_bytes, 0u);
  EXPECT_EQ(m.chunks_released, m.chunks);
}

// A fallback allocation that fails is retried once, after the empty chunks
// went back (deterministic: the backing heap fails exactly one call).
TEST(ChunkRelease, AFailedAllocationGivesEmptyChunksBackAndIsRetried) {
  sa::test::FailPlan plan;
  FailingPool h(FailingPool::Options{.pool = {.shards = 1}, .fallback = {.plan = &plan}, .regions = {.plan = &plan}});
  // Warm up the fallback path (this thread's counter block, the registry), so
  // that the one failing call below is the allocation itself.
  void* warm = h.alloc(100000, 8);
  ASSERT_NE(warm, nullptr);
  h.free(warm, 100000, 8);
  std::vector<void*> blocks((std::size_t{12} << 20) / 64);
  for (void*& p : blocks) {
    p = h.alloc(64, 8);
    ASSERT_NE(p, nullptr);
  }
  for (void* p : blocks) h.free(p, 64, 8);
  const sa::MemoryStats before = h.snapshot_stats().memory;
  ASSERT_GE(before.chunks, 2u);
  const std::int64_t live_before = plan.live.load();
  plan.fail_at = plan.calls.load() + 1;  // the next backing call, the fallback's, fails
  void* big = h.alloc(100000, 8);
  ASSERT_NE(big, nullptr) << "the retry after giving back succeeded";
  const sa::MemoryStats m = h.snapshot_stats().memory;
  EXPECT_EQ(m.oom_retries, before.oom_retries + 1);
  EXPECT_EQ(m.reserved_bytes, 0u) << "every chunk was empty, so every chunk went back";
  EXPECT_EQ(m.chunks_released, before.chunks);
  // The regions went back to the source; the block is one more live backing block.
  EXPECT_EQ(plan.live.load(), live_before - static_cast<std::int64_t>(before.chunks) + 1);
  void* small = h.alloc(64, 8);
  ASSERT_NE(small, nullptr);
  std::memset(small, 0x22, 64);
  h.free(small, 64, 8);
  h.free(big, 100000, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

using sa::test::address_space_bytes;
using sa::test::under_valgrind;

// The child's steps; its exit code names the first that failed.
enum Step : int {
  ok = 0,
  no_limit = 10,
  never_ran_out,
  no_fallback_block_after,
  fallback_got_less_than_the_pool_held,
  no_pooled_block_after,
  no_retry_seen
};

int fill_free_and_recover() {
  constexpr std::size_t headroom = std::size_t{128} << 20;
  constexpr std::size_t block = 256;  // the largest class: fewest blocks for the address space
  constexpr std::size_t big = 100000;
  Pool h(Pool::Options{.pool = {.shards = 1}});
  // Everything the child needs is allocated before the limit.
  std::vector<void*> blocks, bigs;
  blocks.reserve(2 * headroom / block);
  bigs.reserve(2 * headroom / big);
  // The pagemap's flat table (16 GiB of address space) is reserved at the
  // process's first slab: before the limit, as in a process that ran out
  // late, so that the limit binds the slabs and not the table (where the
  // table does not fit, unit-pagemap-fallback covers the radix table).
  h.free(h.alloc(block, 8), block, 8);
  const std::size_t limit = address_space_bytes() + headroom;
  const rlimit r{limit, limit};
  if (address_space_bytes() == 0 || ::setrlimit(RLIMIT_AS, &r) != 0) return no_limit;
  // Pooled blocks (and fallback ones, once the pool cannot grow) until the
  // handle says no.
  std::size_t pooled = 0;
  while (blocks.size() < blocks.capacity()) {
    void* p = h.alloc(block, 8);
    if (p == nullptr) break;
    std::memset(p, 0x5A, 16);
    pooled += sa::Pagemap::lookup(p) != nullptr;
    blocks.push_back(p);
  }
  if (blocks.size() == blocks.capacity()) return never_ran_out;
  // (No snapshot_stats() here: its vectors would need memory there is none of.)
  std::printf("out of memory after %zu blocks of %zu B: %zu MiB pooled, %zu MiB from the fallback\n", blocks.size(),
              block, pooled * block >> 20, (blocks.size() - pooled) * block >> 20);
  for (void* p : blocks) h.free(p, block, 8);
  // Fallback blocks (glibc's, needing address space) until they hold as
  // much as the pool did: only possible if the pool's empty chunks went
  // back, since the fallback's own freed memory is smaller.
  if (pooled * block <= (blocks.size() - pooled) * block) return never_ran_out;  // the test would prove nothing
  while (bigs.size() * big < pooled * block) {
    void* p = h.alloc(big, 8);
    if (p == nullptr) break;
    std::memset(p, 0x6B, big);
    bigs.push_back(p);
  }
  if (bigs.empty()) return no_fallback_block_after;
  std::printf("after the frees: %zu MiB in %zu blocks of %zu B\n", bigs.size() * big >> 20, bigs.size(), big);
  if (bigs.size() * big < pooled * block) return fallback_got_less_than_the_pool_held;
  // And a pooled block again, in what is left.
  void* small = h.alloc(64, 8);
  if (small == nullptr) return no_pooled_block_after;
  std::memset(small, 0x7C, 64);
  const sa::MemoryStats after = h.snapshot_stats().memory;
  std::printf("then 64 B pooled; %llu retries, %llu chunks released, %zu MiB reserved\n",
              static_cast<unsigned long long>(after.oom_retries),
              static_cast<unsigned long long>(after.chunks_released),
              static_cast<std::size_t>(after.reserved_bytes >> 20));
  if (after.oom_retries == 0 || after.chunks_released == 0) return no_retry_seen;
  h.free(small, 64, 8);
  for (void* p : bigs) h.free(p, big, 8);
  return ok;
}

TEST(ChunkRelease, UnderAnAddressSpaceLimitBothKindsRecoverAfterOutOfMemory) {
#if SYDRA_ALLOC_ASAN || SYDRA_ALLOC_TSAN
  GTEST_SKIP() << "the fallback's malloc is the sanitizer's, whose space is reserved at start-up: RLIMIT_AS never "
                  "makes it fail (tried: the child never runs out); "
                  "ChunkRelease.AFailedAllocationGivesEmptyChunksBackAndIsRetried covers the retry here";
#endif
  if (under_valgrind())
    GTEST_SKIP() << "Valgrind's own mappings count against RLIMIT_AS (it dies with its own out-of-memory report); "
                    "ChunkRelease.AFailedAllocationGivesEmptyChunksBackAndIsRetried covers the retry here";
  std::fflush(nullptr);
  const pid_t pid = ::fork();  // RLIMIT_AS is the whole process's: a child takes it
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int step = fill_free_and_recover();
    std::fflush(nullptr);  // _exit() does not flush
    ::_exit(step);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died, status " << status;
  EXPECT_EQ(WEXITSTATUS(status), ok) << "first failed step (Step enum): " << WEXITSTATUS(status);
}

}  // namespace
