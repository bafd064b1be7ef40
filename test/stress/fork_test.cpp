// fork() at any moment, on a plain handle (not the malloc library): three
// threads churn with cross-thread frees, a fourth trims to nothing and
// collects garbage in a loop (so decommits are often in flight), and the
// main thread forks again and again at random moments. Each child, under a
// 5-second alarm, allocates and frees 20,000 blocks with content checks on
// the same handle, then checks what a fork must leave it:
//   - no lock held: the child's calls return (a held lock is the alarm);
//   - the pool's totals exact: every slab of every chunk on exactly one list
//     or fresh, none left in flight by a decommit the child does not run;
//   - the leak report unchanged by the child's own balanced work;
//   - no shard bound to a thread the child does not have;
//   - trim(0) then gives back every retained slab.
// The parent checks every child's exit status, then that its own counts end
// exact. Seed printed; SYDRA_STRESS_SEED replays, SYDRA_STRESS_SCALE scales
// the number of forks (1,000 at 1).
#include <sydra/alloc.hpp>
#include "../support/stress_params.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

// glibc's malloc is fork-safe; the allocators of GCC 12's ASan and TSan
// runtimes are not (a child's malloc can wait forever on a lock a parent's
// thread held at the fork). Under them the child calls no malloc: its
// blocks are all pooled (the fallback is the system heap) and it takes no
// stats snapshot (which allocates its vectors). The parent's threads use
// the fallback either way.
constexpr bool child_may_malloc = !SYDRA_ALLOC_ASAN && !SYDRA_ALLOC_TSAN;


struct Block {
  unsigned char* p;
  std::uint32_t len;
};
unsigned char fill_of(const void* p, std::size_t i) {
  return static_cast<unsigned char>((reinterpret_cast<std::uintptr_t>(p) >> 4) * 31 + i * 7);
}
// A byte in every 13 (every 509 in a block above 4 KiB: the big ones would
// otherwise take most of the test's time), and always the last one.
std::uint32_t stride_of(const Block& b) { return b.len > 4096 ? 509 : 13; }
void fill(const Block& b) {
  for (std::uint32_t i = 0; i < b.len; i += stride_of(b)) b.p[i] = fill_of(b.p, i);
  b.p[b.len - 1] = fill_of(b.p, b.len - 1);
}
bool intact(const Block& b) {
  for (std::uint32_t i = 0; i < b.len; i += stride_of(b))
    if (b.p[i] != fill_of(b.p, i)) return false;
  return b.p[b.len - 1] == fill_of(b.p, b.len - 1);
}
std::uint32_t size_of(std::mt19937& rng, bool fallback_too = true) {
  const unsigned r = rng() % (fallback_too ? 100 : 90);
  if (r < 70) return 16 + rng() % 241;     // small classes
  if (r < 90) return 257 + rng() % 16128;  // larger classes, up to 16 KiB
  if (r < 95) return 65537 + rng() % 4000;  // above the table: the fallback
  return 8 + rng() % 64;
}

// What a child checks; its exit code says which check failed.
int child_body(Pool& h, unsigned s) {
  const sa::LeakReport before = h.leaks();
  std::mt19937 rng(s);
  Block live[256];  // no std::vector: see child_may_malloc
  std::size_t n = 0;
  for (int i = 0; i < 20000; ++i) {
    if (n < 256 && (n == 0 || rng() % 2 == 0)) {
      Block b{nullptr, size_of(rng, child_may_malloc)};
      b.p = static_cast<unsigned char*>(h.alloc(b.len, 8));
      if (b.p == nullptr) return 10;
      fill(b);
      live[n++] = b;
    } else {
      const std::size_t k = rng() % n;
      if (!intact(live[k])) return 11;
      h.free(live[k].p, live[k].len, 8);
      live[k] = live[--n];
    }
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (!intact(live[k])) return 11;
    h.free(live[k].p, live[k].len, 8);
  }
  const sa::LeakReport after = h.leaks();
  if (after.blocks != before.blocks || after.bytes != before.bytes || after.underflow) {
    std::fprintf(stderr, "child: leaks %llu blocks before its work, %llu after\n",
                 static_cast<unsigned long long>(before.blocks), static_cast<unsigned long long>(after.blocks));
    return 12;
  }
  if constexpr (child_may_malloc) {
    const sa::Stats st = h.snapshot_stats();
    unsigned owned = 0;
    for (const auto& sh : st.shards.shards) owned += sh.owned ? 1u : 0u;
    if (owned > 1) {  // at most this thread's own
      std::fprintf(stderr, "child: %u shards still bound\n", owned);
      return 13;
    }
  }
  const auto a = h.pool().audit();
  if (!a.exact || a.in_flight != 0) {
    std::fprintf(stderr,
                 "child: pool totals: reserved %llu slabs = in use %llu + retained %llu + decommitted %llu + fresh "
                 "%llu + in flight %llu? lists agree: %d (listed retained %llu, decommitted %llu; reserved counter %llu)\n",
                 static_cast<unsigned long long>(a.reserved), static_cast<unsigned long long>(a.in_use),
                 static_cast<unsigned long long>(a.retained), static_cast<unsigned long long>(a.decommitted),
                 static_cast<unsigned long long>(a.fresh), static_cast<unsigned long long>(a.in_flight),
                 a.exact ? 1 : 0, static_cast<unsigned long long>(a.listed_retained),
                 static_cast<unsigned long long>(a.listed_decommitted), static_cast<unsigned long long>(a.counted_reserved));
    return 14;
  }
  h.trim(0);
  if (h.pool().audit().retained != 0) return 15;
  return 0;
}

TEST(Fork, AtAnyMomentEveryChildIsWholeAndNothingIsLost) {
  const unsigned s = sa::test::stress_seed();
  const int forks = std::max(20, static_cast<int>(1000 * sa::test::stress_scale()));
  std::printf("fork stress: seed %u (SYDRA_STRESS_SEED=%u replays), %d forks\n", s, s, forks);
  Pool h;
  std::atomic<bool> stop{false};
  std::mutex remote_mu;
  std::vector<Block> remote;  // blocks one churner hands to another to free
  std::atomic<bool> corrupt{false};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(s * 7 + t);
      std::vector<Block> mine;
      while (!stop.load(std::memory_order_relaxed)) {
        if (mine.size() < 512 && rng() % 3 != 0) {
          Block b{nullptr, size_of(rng)};
          b.p = static_cast<unsigned char*>(h.alloc(b.len, 8));
          if (b.p == nullptr) continue;
          fill(b);
          bool handed = false;
          if (rng() % 4 == 0) {  // bounded: the process a fork copies stays small
            std::lock_guard g(remote_mu);
            if (remote.size() < 2048) {
              remote.push_back(b);
              handed = true;
            }
          }
          if (!handed) mine.push_back(b);
        } else if (!mine.empty()) {
          const std::size_t k = rng() % mine.size();
          if (!intact(mine[k])) corrupt = true;
          h.free(mine[k].p, mine[k].len, 8);
          mine[k] = mine.back();
          mine.pop_back();
        }
        if (rng() % 4 == 0) {  // a remote free: another thread's block
          Block b{nullptr, 0};
          {
            std::lock_guard g(remote_mu);
            if (!remote.empty()) {
              b = remote.back();
              remote.pop_back();
            }
          }
          if (b.p != nullptr) {
            if (!intact(b)) corrupt = true;
            h.free(b.p, b.len, 8);
          }
        }
      }
      for (const Block& b : mine) h.free(b.p, b.len, 8);
    });
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      h.trim(0);
      h.collect_garbage();
    }
  });

  std::mt19937 rng(s);
  int hung = 0, failed = 0;
  for (int i = 0; i < forks; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::alarm(5);
      ::_exit(child_body(h, s + static_cast<unsigned>(i)));  // no destructors: the parent's threads are not here
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
      ++hung;
      std::printf("fork %d: child killed by signal %d%s\n", i, WTERMSIG(status),
                  WTERMSIG(status) == SIGALRM ? " (its 5 s alarm: a lock held at the fork?)" : "");
    } else if (WEXITSTATUS(status) != 0) {
      ++failed;
      std::printf("fork %d: child exited with %d\n", i, WEXITSTATUS(status));
    }
  }
  stop = true;
  for (auto& th : threads) th.join();
  for (const Block& b : remote) h.free(b.p, b.len, 8);
  EXPECT_EQ(hung, 0) << "children killed (seed " << s << ")";
  EXPECT_EQ(failed, 0) << "children that failed a check (seed " << s << ")";
  EXPECT_FALSE(corrupt.load()) << "a block's contents changed (seed " << s << ")";
  const sa::LeakReport end = h.leaks();
  EXPECT_EQ(end.blocks, 0u);
  EXPECT_EQ(end.bytes, 0u);
  EXPECT_TRUE(h.pool().audit().exact);
}

}  // namespace
