// Threads that keep moving between CPUs (sched_setaffinity) while they
// allocate and free, most of them without a shard so that every operation
// goes through the per-CPU caches, and every free crosses threads: a block
// must never be handed out twice or lost, whatever CPU a thread lands on in
// the middle of an operation. Cookies check every block's contents; the final
// counts are exact. Runs in every tier (TSan and ASan included; without rseq
// the caches are taken under their locks) and once more with rseq turned off
// (GLIBC_TUNABLES=glibc.pthread.rseq=0). Prints its seed.
#include <sydra/alloc.hpp>
#include "../support/stress_params.hpp"

#include <gtest/gtest.h>

#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;


struct Header {
  std::uint64_t cookie;
  std::uint32_t len;
  std::uint32_t align;
};
std::uint64_t cookie_of(const void* p, std::size_t len) {
  return (reinterpret_cast<std::uintptr_t>(p) * 0x9E3779B97F4A7C15ull) ^ (len * 0xC2B2AE3D27D4EB4Full) ^ 0xA5;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

TEST(Migration, ThreadsMovingBetweenCpusLoseNoBlock) {
  const unsigned s = sa::test::stress_seed();
  const int ops = static_cast<int>(30000 * sa::test::stress_scale());
  const std::vector<int> cpus = allowed_cpus();
  std::printf("migration seed=%u ops/thread=%d cpus=%zu rseq=%d\n", s, ops, cpus.size(),
              static_cast<int>(sa::pal::rseq_registered()));
  std::fflush(stdout);
  Pool h(Pool::Options{.pool = {.shards = 1}});  // one thread gets a shard; the rest use the per-CPU caches
  constexpr std::size_t slot_count = 2048;
  std::vector<std::atomic<void*>> slots(slot_count);
  std::atomic<std::uint64_t> allocated{0}, moves{0};

  auto release = [&](void* p) {
    auto* hd = static_cast<Header*>(p);
    ASSERT_EQ(hd->cookie, cookie_of(p, hd->len)) << "block corrupted or handed out twice";
    const auto fill = static_cast<unsigned char>(hd->cookie >> 56);
    for (std::size_t i = sizeof(Header); i < hd->len; ++i)
      ASSERT_EQ(static_cast<unsigned char*>(p)[i], fill) << "byte " << i << " of " << hd->len;
    h.free(p, hd->len, hd->align);
  };
  auto worker = [&](unsigned tseed) {
    std::mt19937_64 rng(tseed);
    for (int i = 0; i < ops; ++i) {
      if (!cpus.empty() && rng() % 64 == 0) {  // hop to another CPU, mid-stream
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[rng() % cpus.size()], &one);
        if (::sched_setaffinity(0, sizeof one, &one) == 0) moves.fetch_add(1, std::memory_order_relaxed);
      }
      const std::size_t len = sizeof(Header) + rng() % 241;
      const std::size_t align = rng() % 3 == 0 ? 16 : 8;
      void* p = h.alloc(len, align);
      ASSERT_NE(p, nullptr);
      allocated.fetch_add(1, std::memory_order_relaxed);
      auto* hd = static_cast<Header*>(p);
      hd->len = static_cast<std::uint32_t>(len);
      hd->align = static_cast<std::uint32_t>(align);
      hd->cookie = cookie_of(p, len);
      std::memset(hd + 1, static_cast<int>(hd->cookie >> 56), len - sizeof(Header));
      void* old = slots[rng() % slot_count].exchange(p, std::memory_order_acq_rel);
      if (old != nullptr) release(old);
    }
  };
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < 6; ++t) ts.emplace_back(worker, s + t);
  for (auto& t : ts) t.join();
  for (auto& slot : slots) {
    void* p = slot.exchange(nullptr);
    if (p != nullptr) release(p);
  }
  h.collect_garbage();
  const sa::Stats st = h.snapshot_stats();
  std::uint64_t bucket_allocs = 0, bucket_frees = 0;
  for (const auto& b : st.buckets) {
    bucket_allocs += b.allocations;
    bucket_frees += b.frees;
  }
  std::printf("moves=%llu bucket allocations=%llu shard hits=%llu\n", static_cast<unsigned long long>(moves.load()),
              static_cast<unsigned long long>(bucket_allocs), static_cast<unsigned long long>(st.shards.alloc_hits));
  EXPECT_EQ(bucket_allocs + st.shards.alloc_hits, allocated.load()) << "seed " << s;
  EXPECT_GT(bucket_allocs, allocated.load() / 2) << "most allocations went through the per-CPU caches";
  EXPECT_EQ(h.leaks(), sa::LeakReport{}) << "seed " << s;
  if (cpus.size() > 1) {
    EXPECT_GT(moves.load(), 0u);
  }
}

}  // namespace
