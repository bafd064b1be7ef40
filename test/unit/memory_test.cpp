// Memory that comes back: empty slabs go to the pool and serve any class,
// retained slabs beyond the budget are decommitted (by the delay policy or
// trim()), a slab that still holds a deferred or retired block is kept, and
// a trim racing with frees loses nothing.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

Pool::Options buckets_only(std::size_t retain = std::size_t{4} << 20, std::uint32_t delay_ms = 250) {
  return Pool::Options{.pool = {.shards = 0, .slabs = {.retain_bytes = retain, .decommit_delay_ms = delay_ms}}};
}

const char* slab_of(const void* p) {
  const sa::SlabMeta* m = sa::Pagemap::lookup(p);
  return m != nullptr ? m->base : nullptr;
}

// Pages of [p, p + n) that are resident (mincore).
std::size_t resident_pages(const void* p, std::size_t n) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((n + page - 1) / page);
  if (::mincore(const_cast<void*>(p), n, v.data()) != 0) return ~std::size_t{0};
  std::size_t r = 0;
  for (unsigned char c : v) r += c & 1;
  return r;
}

TEST(Memory, AnEmptiedSlabServesAnotherClass) {
  Pool h(buckets_only(std::size_t{1} << 30));  // retain everything: this test is about reuse
  const std::size_t per_slab = sa::slab_bytes / 16;
  std::vector<void*> small(per_slab * 4);
  for (void*& p : small) p = h.alloc(16, 8);
  std::set<const char*> first;
  for (void* p : small) first.insert(slab_of(p));
  ASSERT_GE(first.size(), 4u);
  for (void* p : small) h.free(p, 16, 8);
  h.trim(std::size_t{1} << 30);  // caches back to their slabs; nothing decommitted
  sa::Stats s = h.snapshot_stats();
  EXPECT_EQ(s.buckets[0].slabs, 0u) << "every 16-byte slab emptied and went back to the pool";
  EXPECT_GE(s.memory.retained_bytes, first.size() * sa::slab_bytes);
  const std::uint64_t reused_before = s.memory.slabs_reused_across_classes;
  const std::uint64_t reserved_before = s.memory.reserved_bytes;

  // The same bytes as 128-byte blocks land in the same slabs.
  std::vector<void*> big(small.size() * 16 / 128);
  std::set<const char*> second;
  for (void*& p : big) {
    p = h.alloc(128, 8);
    second.insert(slab_of(p));
  }
  std::size_t shared = 0;
  for (const char* b : second) shared += first.count(b);
  EXPECT_GE(shared, first.size() - 1) << "the 128-byte class took the 16-byte class's slabs";
  s = h.snapshot_stats();
  EXPECT_GE(s.memory.slabs_reused_across_classes - reused_before, first.size() - 1);
  EXPECT_EQ(s.memory.reserved_bytes, reserved_before) << "no new address space for the second phase";
  for (void* p : big) h.free(p, 128, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

TEST(Memory, RetainedSlabsBeyondTheBudgetAreDecommitted) {
  constexpr std::size_t budget = 2 * sa::slab_bytes;
  Pool h(buckets_only(budget, /*delay_ms=*/0));
  const std::size_t per_slab = sa::slab_bytes / 64;
  std::vector<void*> blocks(per_slab * 12);
  for (void*& p : blocks) {
    p = h.alloc(64, 8);
    std::memset(p, 0x5A, 64);
  }
  std::set<const char*> slabs;
  for (void* p : blocks) slabs.insert(slab_of(p));
  for (void* p : blocks) h.free(p, 64, 8);
  // Nothing freed reaches the OS while blocks sit in a per-CPU cache; trim()
  // drains the caches and applies the budget at once.
  const std::size_t released = h.trim();
  const sa::Stats s = h.snapshot_stats();
  EXPECT_LE(s.memory.retained_bytes, budget);
  EXPECT_GE(s.memory.decommitted_bytes, (slabs.size() - 2) * sa::slab_bytes);
  EXPECT_EQ(released, s.memory.decommitted_bytes);
  EXPECT_EQ(s.memory.committed_bytes, s.memory.in_use_bytes + s.memory.retained_bytes);
  // The decommitted slabs' pages are really gone.
  std::size_t gone = 0;
  for (const char* b : slabs) gone += resident_pages(b, sa::slab_bytes) == 0;
  EXPECT_GE(gone, slabs.size() - 2);
  // And they come back when needed, zero-filled and usable.
  std::vector<void*> again(blocks.size());
  for (void*& p : again) {
    p = h.alloc(64, 8);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x6B, 64);
  }
  EXPECT_EQ(h.snapshot_stats().memory.reserved_bytes, s.memory.reserved_bytes);
  for (void* p : again) h.free(p, 64, 8);
}

TEST(Memory, TheDelayPolicyDecommitsWithoutATrim) {
  constexpr std::size_t budget = sa::slab_bytes;
  Pool h(buckets_only(budget, /*delay_ms=*/0));
  std::vector<void*> blocks(sa::slab_bytes / 256 * 8);
  for (void*& p : blocks) p = h.alloc(256, 8);
  for (void* p : blocks) h.free(p, 256, 8);
  h.buckets().drain();  // the caches, back to their slabs (what trim() does first)
  EXPECT_GT(h.snapshot_stats().memory.retained_bytes, budget);
  // A refill is one of the places the policy runs (it holds no lock there).
  void* p = h.alloc(48, 8);
  const sa::Stats s = h.snapshot_stats();
  EXPECT_LE(s.memory.retained_bytes, budget);
  EXPECT_GT(s.memory.decommits, 0u);
  h.free(p, 48, 8);
}

// A slab whose blocks are all free except one that another thread freed while
// a reader was pinned is not empty: the deferred block may not be handed out,
// so the slab may not be handed to anyone else either.
TEST(Memory, ASlabHoldingADeferredBlockUnderAPinnedReaderIsKept) {
  Pool h(Pool::Options{.pool = {.shards = 2}});
  void* keep = h.alloc(64, 8);  // another slab in use: the chunk, and its pagemap entries, stay
  const std::size_t per_slab = sa::slab_bytes / 192;
  std::vector<void*> blocks(per_slab);
  for (void*& p : blocks) p = h.alloc(192, 8);
  const char* slab = slab_of(blocks[0]);
  std::vector<void*> mine, others;  // this slab's blocks, and the rest
  for (void* p : blocks) (slab_of(p) == slab ? mine : others).push_back(p);
  std::atomic<int> stage{0};
  std::thread reader([&] {
    auto g = h.pin();
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  void* deferred = mine.back();
  mine.pop_back();
  std::thread([&] { h.free(deferred, 192, 8); }).join();  // remote: deferred under the pin
  for (void* p : mine) h.free(p, 192, 8);
  h.collect_garbage();
  h.trim(0);
  const sa::SlabMeta* m = sa::Pagemap::lookup(deferred);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->kind, sa::SlabKind::shard) << "the slab was given back while a deferred block waited";
  EXPECT_EQ(m->used.load(), 1u) << "exactly the deferred block keeps it";
  stage = 2;
  reader.join();
  h.collect_garbage();
  h.trim(0);
  EXPECT_EQ(sa::Pagemap::lookup(deferred)->kind, sa::SlabKind::empty) << "once reclaimed, the slab empties";
  for (void* p : others) h.free(p, 192, 8);
  h.free(keep, 64, 8);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// The same for retire(): a retired block is still the reader's to read, so
// its slab stays, untouched, through trims.
TEST(Memory, ASlabHoldingARetiredBlockIsKeptAndUntouched) {
  Pool h(Pool::Options{.pool = {.shards = 1}});
  auto* p = static_cast<unsigned char*>(h.alloc(96, 8));
  std::memset(p, 0xC3, 96);
  {
    auto g = h.pin();
    ASSERT_TRUE(h.retire(p, 96, 8));
    h.collect_garbage();
    h.trim(0);
    for (int i = 0; i < 96; ++i) ASSERT_EQ(p[i], 0xC3) << i;
    EXPECT_EQ(sa::Pagemap::lookup(p)->kind, sa::SlabKind::shard);
  }
  h.collect_garbage();
  h.trim(0);
  EXPECT_EQ(h.snapshot_stats().memory.in_use_bytes, 0u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

// trim() from one thread while others allocate, check and free: nothing is
// lost, nothing is handed out twice, and the counts end exact.
TEST(Memory, ATrimRacingWithFreesLosesNothing) {
  Pool h(Pool::Options{.pool = {.shards = 1, .slabs = {.retain_bytes = 0, .decommit_delay_ms = 0}}});
  const unsigned seed = static_cast<unsigned>(std::random_device{}());
  std::printf("trim race seed=%u\n", seed);
  std::atomic<bool> stop{false};
  std::vector<std::atomic<void*>> slots(512);
  auto worker = [&](unsigned s) {
    std::mt19937 rng(s);
    for (int i = 0; i < 20000; ++i) {
      const std::size_t len = 16 + rng() % 241;
      auto* p = static_cast<unsigned char*>(h.alloc(len, 8));
      ASSERT_NE(p, nullptr);
      std::memset(p, static_cast<int>(len & 0xFF), len);
      std::memcpy(p, &len, sizeof len);
      void* old = slots[rng() % slots.size()].exchange(p);
      if (old != nullptr) {
        std::size_t olen;
        std::memcpy(&olen, old, sizeof olen);
        for (std::size_t k = sizeof olen; k < olen; ++k)
          ASSERT_EQ(static_cast<unsigned char*>(old)[k], olen & 0xFF) << "block changed under its owner";
        h.free(old, olen, 8);
      }
    }
  };
  std::thread trimmer([&] {
    while (!stop.load()) {
      h.trim(0);
      std::this_thread::yield();
    }
  });
  std::thread a(worker, seed), b(worker, seed + 1), c(worker, seed + 2);
  a.join();
  b.join();
  c.join();
  stop = true;
  trimmer.join();
  for (auto& s : slots) {
    void* p = s.exchange(nullptr);
    if (p != nullptr) {
      std::size_t len;
      std::memcpy(&len, p, sizeof len);
      h.free(p, len, 8);
    }
  }
  h.collect_garbage();
  EXPECT_EQ(h.leaks(), sa::LeakReport{}) << "seed " << seed;
  h.trim(0);
  EXPECT_EQ(h.snapshot_stats().memory.in_use_bytes, 0u) << "seed " << seed;
}

}  // namespace
