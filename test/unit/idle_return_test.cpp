// Memory back while idle: after a burst whose every block was freed by the
// threads that allocated it (their exits flush their shards), a handle that
// nobody calls again still gives its empty slabs beyond the retain budget back
// to the OS: at another handle's slow paths, at any thread's exit, or from the
// opt-in background thread. Measured three ways: the pool's own memory
// stats, mincore() over the slabs the burst used, and the process's RSS
// (/proc/self/statm).
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <latch>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
using Clock = std::chrono::steady_clock;

constexpr std::size_t budget = std::size_t{4} << 20;  // the default retain budget, spelled out
constexpr unsigned burst_threads = 6;
constexpr std::size_t bytes_per_thread = std::size_t{8} << 20;
constexpr std::size_t block = 256;

Pool::Options idle_options(std::uint32_t background_ms) {
  // A shard per thread: every block of the burst is freed onto its owner's
  // slabs, its head given back at the owner's exit, none sits in a per-CPU cache.
  return Pool::Options{
      .pool = {.shards = burst_threads,
               .slabs = {.retain_bytes = budget, .decommit_delay_ms = 250, .background_return_ms = background_ms}}};
}

bool under_valgrind() {
#if __has_include(<valgrind/valgrind.h>)
  return RUNNING_ON_VALGRIND != 0;
#else
  return false;
#endif
}

std::size_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

// Bytes of the given slabs that are resident (mincore).
std::size_t resident_in(const std::set<const char*>& slabs) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v(sa::slab_bytes / page);
  std::size_t r = 0;
  for (const char* s : slabs) {
    if (::mincore(const_cast<char*>(s), sa::slab_bytes, v.data()) != 0) continue;  // released: nothing resident
    for (unsigned char c : v) r += (c & 1) * page;
  }
  return r;
}

struct Burst {
  std::set<const char*> slabs;  // every slab a block of the burst lived in
  std::size_t peak_committed = 0;
  std::size_t rss_before = 0, rss_peak = 0;
};

// burst_threads threads each fill bytes_per_thread with blocks, touch them,
// wait until all are full, free their own blocks and exit.
Burst run_burst(Pool& a) {
  Burst b;
  b.rss_before = rss_bytes();
  std::mutex mu;
  std::latch full(burst_threads + 1), go(1);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < burst_threads; ++t) {
    threads.emplace_back([&] {
      std::vector<void*> mine(bytes_per_thread / block);
      std::set<const char*> seen;
      for (void*& p : mine) {
        p = a.alloc(block, 8);
        ASSERT_NE(p, nullptr);
        std::memset(p, 0x3C, block);
        seen.insert(sa::Pagemap::lookup(p)->base);
      }
      {
        std::lock_guard g(mu);
        b.slabs.insert(seen.begin(), seen.end());
      }
      full.count_down();
      go.wait();
      for (void* p : mine) a.free(p, block, 8);
    });  // the thread's exit flushes its shard: every slab it used is empty
  }
  full.arrive_and_wait();
  b.peak_committed = a.snapshot_stats().memory.committed_bytes;
  b.rss_peak = rss_bytes();
  go.count_down();
  for (std::thread& t : threads) t.join();
  return b;
}

// Polls (up to 3 s) until the slabs the burst used hold no more than the
// budget resident; `work` runs between polls. Returns the milliseconds it
// took, or -1 if it never happened.
template <class Work>
long wait_for_return(const Burst& b, Work work) {
  const auto start = Clock::now();
  while (Clock::now() - start < std::chrono::seconds(3)) {
    if (resident_in(b.slabs) <= budget)
      return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
    work();
  }
  return -1;
}

void expect_returned(Pool& a, const Burst& b, long ms, const char* how) {
  const sa::MemoryStats m = a.snapshot_stats().memory;
  const std::size_t resident = resident_in(b.slabs), rss = rss_bytes();
  std::printf("[%s] burst: %zu MiB committed at the peak over %zu slabs, RSS %zu -> %zu MiB; after %ld ms idle: "
              "committed %zu KiB, resident in the burst's slabs %zu KiB, RSS %zu MiB (retain budget %zu KiB, "
              "metadata %zu KiB)\n",
              how, b.peak_committed >> 20, b.slabs.size(), b.rss_before >> 20, b.rss_peak >> 20, ms,
              static_cast<std::size_t>(m.committed_bytes >> 10), resident >> 10, rss >> 20, budget >> 10,
              static_cast<std::size_t>(m.metadata_bytes >> 10));
  ASSERT_GE(b.peak_committed, burst_threads * bytes_per_thread) << "the burst really committed its memory";
  EXPECT_GE(ms, 0) << how << ": the idle handle's surplus never went back";
  // Issue 18's target: back within 1 s of idle (the bound is decommit_delay_ms,
  // 250 ms, plus the next poll). Valgrind runs the burst's teardown and the
  // polls tens of times slower than the clock the delay is measured on.
  if (!under_valgrind()) {
    EXPECT_LE(ms, 1000) << how << ": back, but later than 1 s after the burst";
  }
  EXPECT_EQ(m.in_use_bytes, 0u) << "every block was freed and every cache flushed";
  EXPECT_LE(m.committed_bytes, m.retain_budget_bytes);
  EXPECT_LE(resident, budget);
  // The process's RSS: the burst's 48 MiB must be gone, within the budget,
  // the metadata and what the other handle and the test itself hold (8 MiB;
  // 16 MiB under ASan, whose shadow of the burst, an eighth of it, stays
  // resident). Valgrind's and TSan's RSS is mostly their own shadow memory,
  // several times the burst and never given back: not measured there.
  if (!under_valgrind() && !SYDRA_ALLOC_TSAN) {
    const std::size_t slack = std::size_t{SYDRA_ALLOC_ASAN ? 16 : 8} << 20;
    EXPECT_LE(rss, b.rss_before + budget + m.metadata_bytes + slack);
  }
}

TEST(IdleReturn, AnIdleHandleGivesMemoryBackWhileAnotherHandleWorks) {
  Pool a(idle_options(0));
  const Burst b = run_burst(a);
  // From here on nobody calls into `a`: only `b_handle` works, and its
  // refills (slow paths) are where a's due decommit runs.
  Pool other;
  const long ms = wait_for_return(b, [&] {
    std::vector<void*> v(2000);
    for (void*& p : v) p = other.alloc(64, 8);
    for (void* p : v) other.free(p, 64, 8);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  expect_returned(a, b, ms, "another handle works");
}

TEST(IdleReturn, TheBackgroundThreadGivesMemoryBackWithNoCallAtAll) {
  Pool a(idle_options(/*background_ms=*/50));
  const Burst b = run_burst(a);
  // Nothing at all happens in the process: only the background thread can
  // give the memory back.
  const long ms = wait_for_return(b, [] { std::this_thread::sleep_for(std::chrono::milliseconds(20)); });
  expect_returned(a, b, ms, "background thread");
  // The documented bound: decommit_delay_ms (250) + background_return_ms
  // (50), plus scheduling; 3 s is the test's patience, not the bound.
}

// Without the background thread and with nothing happening, nothing gives
// the memory back (there is no hidden trigger that the two tests above could
// be leaning on); the next exit of any thread bound to any handle does.
TEST(IdleReturn, WithoutCallsItStaysUntilAThreadExitsAnywhere) {
  Pool a(idle_options(0));
  const Burst b = run_burst(a);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // well past the 250 ms delay
  EXPECT_GT(resident_in(b.slabs), budget) << "something decommitted with no call, no exit and no background thread";
  Pool other;
  std::thread([&] {
    void* p = other.alloc(64, 8);
    other.free(p, 64, 8);
  }).join();  // its exit polls the idle registry
  EXPECT_LE(resident_in(b.slabs), budget) << "the thread's exit gave it back, before join() returned";
  expect_returned(a, b, 0, "a thread exit");
}

}  // namespace
