// The heap profiler's behaviour on policies that opt in (docs/profiling.md):
// nothing is added where a policy leaves it out; sampled blocks are the
// fallback's and their records go when they are freed (or moved); the
// window and peak profiles; thread exit and fork; the file format.
//
// Statistical checks use the default mean (512 KiB) and enough bytes that
// the tolerance is at least 5 standard errors (sqrt(T/B), see
// accuracy_test.cpp); the sampler's seed is fixed, so runs are reproducible.
#include "profiled_policy.hpp"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace sa = sydra::alloc;
namespace prof = sydra::alloc::prof;
using sydra_test::ProfiledFallback;
using sydra_test::ProfiledPool;

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::uint64_t seed = 0xB10C5;

struct Held {
  void* p;
  std::size_t n;
};

template <class H>
concept HasHeapProfile = requires(H& h) { h.heap_profile(); };

// Allocates `bytes` in blocks of 16 B to 64 KiB (cycling), keeping them.
template <class H>
__attribute__((noinline)) void fill(H& h, std::size_t bytes, std::vector<Held>& out) {
  static constexpr std::size_t sizes[] = {16, 100, 1024, 4096, 16384, 65536};
  for (std::size_t done = 0, i = 0; done < bytes; ++i) {
    const std::size_t n = sizes[i % std::size(sizes)];
    out.push_back({h.alloc(n, 16), n});
    done += n;
  }
}
// The fixed seed, then `bytes` from fill(): the same samples on every run.
template <class H>
std::vector<Held> seeded_fill(H& h, std::size_t bytes) {
  prof::reseed_this_thread(seed, prof::default_mean_bytes);
  std::vector<Held> v;
  fill(h, bytes, v);
  return v;
}
template <class H>
void release(H& h, std::vector<Held>& v) {
  for (const Held& b : v) h.free(b.p, b.n, 16);
  v.clear();
}

// Bytes of the stacks that pass through the function named `name` (an
// exported symbol: dladdr finds it).
double bytes_through(prof::HeapProfile& p, prof::ProfileKind kind, const char* name) {
  std::vector<prof::SiteRow> rows(prof::HeapProfile::max_stacks);
  rows.resize(p.sites(kind, rows.data(), rows.size()));
  double sum = 0;
  for (const prof::SiteRow& r : rows) {
    for (unsigned i = 0; i < r.depth; ++i) {
      Dl_info info{};
      if (dladdr(reinterpret_cast<void*>(r.frames[i] - 1), &info) != 0 && info.dli_sname != nullptr &&
          std::strcmp(info.dli_sname, name) == 0) {
        sum += r.bytes;
        break;
      }
    }
  }
  return sum;
}

}  // namespace

// Two named sites that both allocate through fill(), for the window and peak
// profiles to tell apart.
SYDRA_TEST_SITE void prof_fill_inside(ProfiledPool& h, std::size_t bytes, std::vector<Held>& out) {
  fill(h, bytes, out);
  asm volatile("" ::: "memory");  // not a tail call: this frame stays on the stack
}
SYDRA_TEST_SITE void prof_fill_outside(ProfiledPool& h, std::size_t bytes, std::vector<Held>& out) {
  fill(h, bytes, out);
  asm volatile("nop" ::: "memory");  // another body than prof_fill_inside's
}

TEST(Prof, NothingWhenThePolicyLeavesItOut) {
  using Plain = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
  static_assert(!Plain::profiled && ProfiledPool::profiled);
  static_assert(std::is_empty_v<sa::NoProfiling::Layer>);
  // A handle with no pooled layer is its fallback and the leak report's two
  // fields, and nothing more: the empty profiler member takes no byte.
  using Default = sa::BasicAllocatorHandle<sa::DefaultPolicy>;
  struct Mirror {
    Default::Fallback fallback;
    sa::LeakReport* leak_report;
    bool print_leaks;
  };
  static_assert(sizeof(Default) == sizeof(Mirror));
  static_assert(sizeof(ProfiledFallback) == sizeof(Mirror) + sizeof(sa::HeapProfiling::Layer));
  static_assert(!HasHeapProfile<Plain> && HasHeapProfile<ProfiledPool>);
}

TEST(Prof, DisabledAtRunTimeRecordsNothing) {
  ProfiledPool::Options o;
  o.profiling.enabled = false;
  ProfiledPool h(o);
  EXPECT_EQ(h.heap_profile(), nullptr);
  std::vector<Held> v;
  fill(h, 64 * MiB, v);
  for (const Held& b : v) EXPECT_NE(sa::Pagemap::lookup(b.p), nullptr) << "every small block pooled";
  release(h, v);
}

TEST(Prof, SampledBlocksAreTheFallbacksAndCarryTheirRequest) {
  ProfiledPool h;
  std::vector<Held> v = seeded_fill(h, 256 * MiB);
  std::size_t sampled = 0;
  for (const Held& b : v) {
    prof::Sample s;
    if (!h.heap_profile()->find(b.p, &s)) continue;
    ++sampled;
    EXPECT_EQ(sa::Pagemap::lookup(b.p), nullptr) << "a sampled block is never pooled";
    EXPECT_EQ(s.size, b.n);
    EXPECT_EQ(s.align, 16u);
    EXPECT_EQ(s.size_class, ProfiledPool::Classes::class_of(b.n, 16));
    EXPECT_EQ(s.thread, static_cast<std::uint32_t>(::gettid()));
    EXPECT_NEAR(s.weight, prof::inverse_probability(b.n, prof::default_mean_bytes), 1e-9);
  }
  // About 256 MiB / 512 KiB = 512 samples (fewer: a sample ends its interval).
  EXPECT_GT(sampled, 300u);
  EXPECT_LT(sampled, 600u);
  release(h, v);
}

template <class H>
void frees_drop_the_estimate() {
  H h;
  std::vector<Held> v = seeded_fill(h, 512 * MiB);
  const prof::ProfileTotals before = h.heap_profile()->totals(prof::ProfileKind::live);
  EXPECT_NEAR(before.bytes / (512.0 * MiB), 1.0, 0.15);  // 5 standard errors (3.1% at 512 MiB)
  release(h, v);
  const prof::ProfileTotals after = h.heap_profile()->totals(prof::ProfileKind::live);
  EXPECT_LT(std::fabs(after.bytes), 1.0) << "every sampled block's record went with it";
  EXPECT_LT(std::fabs(after.blocks), 1e-6);
  std::vector<prof::SiteRow> rows(16);
  EXPECT_EQ(h.heap_profile()->sites(prof::ProfileKind::live, rows.data(), rows.size()), 0u);
}
TEST(Prof, FreeingSampledBlocksDropsTheEstimatePooled) { frees_drop_the_estimate<ProfiledPool>(); }
TEST(Prof, FreeingSampledBlocksDropsTheEstimateFallbackOnly) { frees_drop_the_estimate<ProfiledFallback>(); }

TEST(Prof, MovedSampledBlocksLeaveTheirRecord) {
  ProfiledFallback h;
  std::vector<Held> v = seeded_fill(h, 64 * MiB);
  std::size_t moved = 0;
  for (Held& b : v) {
    if (!h.heap_profile()->find(b.p, nullptr)) continue;
    EXPECT_FALSE(h.resize(b.p, b.n, 16, b.n + 1)) << "a sampled block is moved, never resized";
    void* q = h.remap(b.p, b.n, 16, b.n * 2);
    ASSERT_NE(q, nullptr);
    EXPECT_FALSE(h.heap_profile()->find(b.p, nullptr) && q != b.p);
    b = {q, b.n * 2};
    ++moved;
  }
  EXPECT_GT(moved, 0u);
  release(h, v);
  EXPECT_LT(std::fabs(h.heap_profile()->totals(prof::ProfileKind::live).bytes), 1.0);
}

TEST(Prof, WindowCountsTheAllocationsBetweenStartAndStop) {
  ProfiledPool h;
  prof::reseed_this_thread(seed, prof::default_mean_bytes);
  prof::HeapProfile& p = *h.heap_profile();
  std::vector<Held> v;
  prof_fill_outside(h, 128 * MiB, v);  // before start: not in the window
  release(h, v);
  p.start();
  for (int round = 0; round < 16; ++round) {  // 1 GiB allocated in the window, 64 MiB live at a time
    prof_fill_inside(h, 64 * MiB, v);
    release(h, v);
  }
  p.stop();
  prof_fill_outside(h, 128 * MiB, v);  // after stop: not in the window either
  release(h, v);
  const double in = bytes_through(p, prof::ProfileKind::window, "prof_fill_inside");
  const double out = bytes_through(p, prof::ProfileKind::window, "prof_fill_outside");
  EXPECT_EQ(out, 0.0);
  EXPECT_NEAR(in / (1024.0 * MiB), 1.0, 0.11);  // 5 standard errors (2.2% at 1 GiB)
  EXPECT_NEAR(p.totals(prof::ProfileKind::window).bytes, in, 1.0);
}

TEST(Prof, PeakKeepsTheHighWater) {
  ProfiledPool h;
  prof::reseed_this_thread(seed, prof::default_mean_bytes);
  prof::HeapProfile& p = *h.heap_profile();
  std::vector<Held> big, small;
  prof_fill_inside(h, 512 * MiB, big);
  release(h, big);
  prof_fill_outside(h, 64 * MiB, small);  // after the peak: live, but never at the peak
  const double peak = p.totals(prof::ProfileKind::peak).bytes;
  EXPECT_NEAR(peak / (512.0 * MiB), 1.0, 0.16);  // 5 standard errors, and the peak's 1/64 step
  EXPECT_EQ(bytes_through(p, prof::ProfileKind::peak, "prof_fill_outside"), 0.0);
  EXPECT_NEAR(bytes_through(p, prof::ProfileKind::peak, "prof_fill_inside"), peak, 1.0);
  const double live = p.totals(prof::ProfileKind::live).bytes;
  EXPECT_NEAR(live / (64.0 * MiB), 1.0, 0.45);  // 5 standard errors (8.8% at 64 MiB)
  release(h, small);
}

TEST(Prof, ThreadsThatExitLeaveTheirSamplesToTheirBlocks) {
  ProfiledPool h;
  constexpr int threads = 4;
  std::vector<Held> v[threads];
  std::atomic<std::uint32_t> tids[threads];
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&, i] {
      prof::reseed_this_thread(seed + i, prof::default_mean_bytes);
      tids[i] = static_cast<std::uint32_t>(::gettid());
      fill(h, 64 * MiB, v[i]);
    });
  }
  for (auto& t : ts) t.join();
  for (int i = 0; i < threads; ++i) {
    std::size_t mine = 0;
    for (const Held& b : v[i]) {
      prof::Sample s;
      if (h.heap_profile()->find(b.p, &s)) {
        EXPECT_EQ(s.thread, tids[i].load());
        ++mine;
      }
    }
    EXPECT_GT(mine, 40u) << "thread " << i << ": 64 MiB at 512 KiB is about 120 samples";
    release(h, v[i]);  // freed by another thread than the one that sampled it
  }
  EXPECT_LT(std::fabs(h.heap_profile()->totals(prof::ProfileKind::live).bytes), 1.0);
}

TEST(Prof, ForkWhileThreadsSample) {
  ProfiledPool h;
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < 2; ++i) {
    ts.emplace_back([&] {
      std::vector<Held> v;
      while (!stop.load(std::memory_order_relaxed)) {
        fill(h, 4 * MiB, v);
        release(h, v);
      }
    });
  }
  std::string failure;
  for (int f = 0; f < 40 && failure.empty(); ++f) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      failure = "fork failed";
      break;
    }
    if (pid == 0) {  // the child: the profiler's lock is free, and it samples and writes
      ::alarm(10);
      std::vector<Held> v;
      fill(h, 16 * MiB, v);
      const int fd = ::open("/dev/null", O_WRONLY);
      const bool wrote = h.heap_profile()->write(fd, prof::ProfileKind::live);
      // The child's samples carry the child's thread id, not its parent's.
      bool own_id = true;
      for (const Held& b : v) {
        prof::Sample s;
        if (h.heap_profile()->find(b.p, &s)) own_id = own_id && s.thread == static_cast<std::uint32_t>(::gettid());
      }
      release(h, v);
      ::_exit(wrote && own_id ? 0 : 1);
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failure = "child " + std::to_string(f) + ": status " + std::to_string(status);
  }
  stop = true;
  for (auto& t : ts) t.join();
  EXPECT_EQ(failure, "");
}

// One call site (stack_site) reached from two callers: a capture must name
// the right caller every time, whether it came from the thread's cache of the
// last unwind or from a new one.
SYDRA_TEST_SITE unsigned stack_site(std::uintptr_t* out) {
  const unsigned n = prof::capture_stack(out, prof::max_frames,
                                         reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)), {});
  asm volatile("" ::: "memory");
  return n;
}
SYDRA_TEST_SITE unsigned stack_caller_one(std::uintptr_t* out) {
  const unsigned n = stack_site(out);
  asm volatile("" ::: "memory");
  return n;
}
SYDRA_TEST_SITE unsigned stack_caller_two(std::uintptr_t* out) {
  char pad[96];  // another frame size
  asm volatile("" : : "r"(pad) : "memory");
  const unsigned n = stack_site(out);
  asm volatile("" ::: "memory");
  return n;
}
std::string name_of(std::uintptr_t ret) {
  Dl_info info{};
  return dladdr(reinterpret_cast<void*>(ret - 1), &info) != 0 && info.dli_sname != nullptr ? info.dli_sname : "?";
}

TEST(Prof, CachedStacksNameTheirCallers) {
  const std::uint64_t hits_before = prof::cached_stacks();
  const int order[] = {1, 1, 1, 2, 2, 1, 2, 1, 1, 2, 2, 2};
  std::uintptr_t frames[prof::max_frames];
  for (int which : order) {
    const unsigned n = which == 1 ? stack_caller_one(frames) : stack_caller_two(frames);
    ASSERT_GE(n, 2u);
    // frames[0]: the return into stack_site's caller, i.e. that caller.
    EXPECT_EQ(name_of(frames[0]), which == 1 ? "stack_caller_one" : "stack_caller_two");
  }
  // Six calls followed one from the same caller: each was the cache's.
  EXPECT_EQ(prof::cached_stacks() - hits_before, 6u);
}

TEST(Prof, WritesAGperftoolsHeapProfile) {
  ProfiledPool h;
  std::vector<Held> v = seeded_fill(h, 128 * MiB);
  char path[] = "/tmp/sydra-prof-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_TRUE(h.heap_profile()->write(path, prof::ProfileKind::live));
  std::ifstream in(path);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  std::smatch m;
  ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(heap profile:\s*(\d+):\s+(\d+)\s+\[\s*(\d+):\s+(\d+)\]\s+@ heapprofile)")))
      << line;
  const prof::ProfileTotals t = h.heap_profile()->totals(prof::ProfileKind::live);
  EXPECT_NEAR(std::stod(m[2]), t.bytes, 1.0 * h.heap_profile()->max_stacks);  // the lines' bytes, rounded each
  std::size_t stacks = 0;
  bool maps = false, self = false;
  while (std::getline(in, line)) {
    if (line == "MAPPED_LIBRARIES:") {
      maps = true;
      continue;
    }
    if (maps) {
      self = self || line.find("prof-profiles") != std::string::npos;
      continue;
    }
    if (line.empty()) continue;
    EXPECT_TRUE(std::regex_match(line, std::regex(R"(\s*\d+:\s+\d+\s+\[\s*\d+:\s+\d+\]\s+@( 0x[0-9a-f]+)+)"))) << line;
    ++stacks;
  }
  EXPECT_GT(stacks, 0u);
  EXPECT_TRUE(maps && self) << "the mappings that symbolise it: /proc/self/maps";
  ::unlink(path);
  release(h, v);
}
