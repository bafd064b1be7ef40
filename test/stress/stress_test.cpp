// Concurrency stress, in every mode: threads swap blocks through atomic
// slots, so most frees happen on another thread than the alloc. Every block
// carries a cookie and a fill pattern, checked when it is freed. Some threads
// exit with blocks still live in the slots; new threads take their place.
// With epochs (small_pool), readers pin, and some blocks are retired instead
// of freed. Stats are sampled during the run (never torn) and the final
// counts must be exact.
//
// SYDRA_STRESS_SCALE multiplies the work (the soak suite sets it);
// SYDRA_STRESS_SEED replays a run. The seed is always printed.
#include <sydra/alloc.hpp>
#include "../support/stress_params.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

constexpr std::size_t slot_count = 512;
constexpr int threads_at_once = 4;
constexpr int generations = 3;  // each thread slot is run by 3 threads in turn

struct Header {  // the first 16 bytes of every block: what it is, and a checksum
  std::uint32_t len;
  std::uint32_t align;
  std::uint64_t cookie;
};

std::uint64_t cookie_of(const void* p, std::size_t len, std::size_t align) {
  return (reinterpret_cast<std::uintptr_t>(p) * 0x9E3779B97F4A7C15ull) ^ (len * 0xC2B2AE3D27D4EB4Full) ^
         (align << 40) ^ 0x5A5A;
}
unsigned char fill_of(std::uint64_t cookie) { return static_cast<unsigned char>(cookie >> 56); }


template <class H>
concept Epochs = requires(H& h) { h.retire(nullptr, 0, 0); };
template <class H>
concept Snapshots = H::has_stats;

struct Counts {
  std::atomic<std::uint64_t> pooled{0}, fallback{0}, checked{0};
};

template <class H>
bool pooled_request(std::size_t len, std::size_t align) {
  if constexpr (H::pooled) {
    return len <= H::Classes::max_size && align <= sa::max_pooled_alignment;
  } else {
    return false;
  }
}

void check_block(void* p) {
  auto* h = static_cast<Header*>(p);
  ASSERT_EQ(h->cookie, cookie_of(p, h->len, h->align)) << "cookie overwritten: block corrupted or handed out twice";
  const unsigned char f = fill_of(h->cookie);
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t i = sizeof(Header); i < h->len; ++i) ASSERT_EQ(bytes[i], f) << "byte " << i << " of " << h->len;
}

template <class Handle>
void run_stress() {
  const unsigned s = sa::test::stress_seed();
  const double k = sa::test::stress_scale();
  const int ops = static_cast<int>(20000 * k);
  std::printf("stress seed=%u scale=%.2f ops/thread=%d policy=%s\n", s, k, ops, Handle::PolicyType::name);
  std::fflush(stdout);

  Handle h;
  std::vector<std::atomic<void*>> slots(slot_count);
  Counts counts;

  auto release = [&](void* p, std::mt19937_64& rng) {
    check_block(p);
    const std::size_t len = static_cast<Header*>(p)->len;
    const std::size_t align = static_cast<Header*>(p)->align;
    if constexpr (Epochs<Handle>) {
      if (rng() % 8 == 0) {
        ASSERT_TRUE(h.retire(p, len, align));
        return;
      }
    }
    h.free(p, len, align);
  };

  auto worker = [&](unsigned tseed) {
    std::mt19937_64 rng(tseed);
    for (int i = 0; i < ops; ++i) {
      const auto roll = rng() % 100;
      std::size_t len = roll < 90 ? 16 + rng() % 241 : 257 + rng() % 6000;
      const std::size_t align = roll % 10 == 3 ? 64 : roll % 10 == 5 ? 16 : 8;
      // Counted before the allocation, so that another thread's snapshot never
      // sees a live block that no count covers yet.
      (pooled_request<Handle>(len, align) ? counts.pooled : counts.fallback).fetch_add(1, std::memory_order_relaxed);
      void* p = h.alloc(len, align);
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u);
      auto* hd = static_cast<Header*>(p);
      hd->len = static_cast<std::uint32_t>(len);
      hd->align = static_cast<std::uint32_t>(align);
      hd->cookie = cookie_of(p, len, align);
      std::memset(hd + 1, fill_of(hd->cookie), len - sizeof(Header));

      const std::size_t slot = rng() % slot_count;
      std::optional<std::uint64_t> pin;
      if constexpr (Epochs<Handle>) {
        if (rng() % 4 == 0) pin = h.enter_epoch();
      }
      // Publish our block; take whatever was there (its header says what it is).
      void* old = slots[slot].exchange(p, std::memory_order_acq_rel);
      if (old != nullptr) {
        release(old, rng);
        counts.checked.fetch_add(1, std::memory_order_relaxed);
      }
      if constexpr (Epochs<Handle>) {
        if (pin) h.leave_epoch(*pin);
        if (rng() % 512 == 0) h.collect_garbage();
      }
      if constexpr (Snapshots<Handle>) {
        if (rng() % 256 == 0) {
          const sa::Stats st = h.snapshot_stats();
          for (const auto& b : st.buckets) {
            ASSERT_EQ(b.in_use, b.allocations - b.frees);
            ASSERT_LE(b.in_use, b.high_water);
          }
          ASSERT_LE(st.shards.reclaimed_total, st.shards.deferred_total);
          ASSERT_LE(st.shards.backlog, st.shards.deferred_total) << "backlog wrapped";
          for (const auto& sh : st.shards.shards)
            for (const auto& c : sh.classes) {
              ASSERT_LE(c.reclaimed, c.deferred) << "reclaimed ran ahead of deferred";
              ASSERT_LE(c.in_use, c.allocations) << "in_use wrapped";
            }
          ASSERT_GE(st.fallback.allocs, st.fallback.frees);
          if constexpr (Handle::counts_live) {
            // The tally after the snapshot: a block allocated while leaks()
            // ran may already be live in it. (Both in one ASSERT_LE, g++
            // reads the tally first, and the check fails on a correct count.)
            const std::uint64_t live = h.leaks().blocks;
            ASSERT_LE(live, counts.pooled + counts.fallback);
          }
        }
      }
    }
  };

  std::mt19937 seeds(s);
  for (int gen = 0; gen < generations; ++gen) {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads_at_once; ++t) ts.emplace_back(worker, seeds());
    for (auto& t : ts) t.join();  // these threads exit with their blocks still in the slots
  }
  std::mt19937_64 rng(s);
  for (std::size_t i = 0; i < slot_count; ++i) {
    void* p = slots[i].exchange(nullptr);
    if (p != nullptr) release(p, rng);
  }

  if constexpr (Epochs<Handle>) {
    h.collect_garbage();
    h.collect_garbage();
  }
  if constexpr (Handle::counts_live) {  // unchecked mimalloc mode counts nothing
    EXPECT_EQ(h.leaks(), sa::LeakReport{}) << "seed " << s;
  }
  EXPECT_GT(counts.checked.load(), static_cast<std::uint64_t>(ops));
  if constexpr (Snapshots<Handle>) {
    const sa::Stats st = h.snapshot_stats();
    std::uint64_t bucket_allocs = 0, bucket_in_use = 0;
    for (const auto& b : st.buckets) {
      bucket_allocs += b.allocations;
      bucket_in_use += b.in_use;
    }
    EXPECT_EQ(bucket_allocs + st.shards.alloc_hits, counts.pooled.load()) << "seed " << s;
    EXPECT_EQ(st.fallback.allocs, counts.fallback.load()) << "seed " << s;
    EXPECT_EQ(st.fallback.frees, counts.fallback.load()) << "seed " << s;
    EXPECT_EQ(bucket_in_use, 0u);
    EXPECT_EQ(st.shards.backlog, 0u);
    EXPECT_EQ(st.shards.deferred_total, st.shards.reclaimed_total);
    EXPECT_EQ(st.shards.pinned_threads, 0u);
  }
}

TEST(Stress, CrossThreadSwapsWithCookiesAndExactCounts) { run_stress<sa::AllocatorHandle>(); }

// The same run on a small_pool that opted out of stats: its shards are
// another instantiation (Shard<Ctx, false>, no counters on the fast path),
// so the cookies and the fill check it on its own.
struct LeanPolicy : sa::SmallPoolPolicyWith<4, false, false> {
  static constexpr const char* name = "small_pool-lean";
};
TEST(Stress, CrossThreadSwapsOnShardsWithoutStats) { run_stress<sa::BasicAllocatorHandle<LeanPolicy>>(); }


}  // namespace
