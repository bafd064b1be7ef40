// The C allocation API and operator new/delete of libsydra-malloc.so, run
// under LD_PRELOAD (meson.build): what glibc, POSIX and the C++ standard
// promise, fork in a threaded process, thread exit, and (checked build only,
// suite filter MallocChecked*) misuse diagnosed.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

bool aligned_to(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

// Opaque to the optimiser: a malloc/free pair the compiler could drop.
void* volatile sink;
void* call_malloc(std::size_t n) { return sink = std::malloc(n); }

TEST(MallocApi, RunsOnSydraMalloc) {
  for (const char* name : {"malloc", "free", "realloc", "_Znwm", "_ZdlPv", "malloc_usable_size"}) {
    Dl_info info{};
    void* sym = ::dlsym(RTLD_DEFAULT, name);
    ASSERT_NE(sym, nullptr) << name;
    ASSERT_NE(::dladdr(sym, &info), 0) << name;
    EXPECT_NE(std::strstr(info.dli_fname, "sydra-malloc"), nullptr) << name << " comes from " << info.dli_fname;
  }
}

TEST(MallocApi, ZeroBytesIsAUniqueFreeableBlock) {
  void* a = call_malloc(0);
  void* b = call_malloc(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_GE(malloc_usable_size(a), 1u);
  std::free(a);
  std::free(b);
  std::free(nullptr);  // a no-op
}

TEST(MallocApi, EverySizeIsAlignedToSixteenAndUsable) {
  std::vector<std::pair<unsigned char*, std::size_t>> live;
  for (std::size_t n = 1; n <= 20000; n += (n < 600 ? 1 : 97)) {
    auto* p = static_cast<unsigned char*>(call_malloc(n));
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(aligned_to(p, 16)) << n;
    EXPECT_GE(malloc_usable_size(p), n);
    std::memset(p, static_cast<int>(n & 0xff), n);
    live.emplace_back(p, n);
  }
  for (auto [p, n] : live) {
    for (std::size_t k = 0; k < n; k += 13) ASSERT_EQ(p[k], static_cast<unsigned char>(n & 0xff)) << n;
    std::free(p);
  }
}

TEST(MallocApi, CallocZeroesAndRefusesAnOverflow) {
  for (int i = 0; i < 64; ++i) {  // dirty blocks of the classes calloc will reuse
    void* p = call_malloc(static_cast<std::size_t>(i) * 8 + 8);
    std::memset(p, 0xff, static_cast<std::size_t>(i) * 8 + 8);
    std::free(p);
  }
  for (std::size_t n : {1u, 16u, 100u, 512u, 5000u, 300000u}) {
    auto* p = static_cast<unsigned char*>(std::calloc(n, 1));
    ASSERT_NE(p, nullptr);
    for (std::size_t k = 0; k < n; ++k) ASSERT_EQ(p[k], 0) << n;
    std::free(p);
  }
  errno = 0;
  EXPECT_EQ(std::calloc(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

// Resident pages of this process (/proc/self/statm's second field).
long resident_pages() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  long size = 0, resident = -1;
  if (f != nullptr) {
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    std::fclose(f);
  }
  return resident;
}
long minor_faults() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// heap/owned_libc_heap.hpp: glibc's heap keeps freed large blocks for reuse
// (no trim at free, no mmap per block), and returns their pages once the
// delay (250 ms) has passed and a poll runs; a poll before it returns
// nothing. calloc still clears a reused, dirty block. Blocks a worker thread
// takes come from the same heap (one arena), whose pages go back as well.
constexpr std::size_t big_block = std::size_t{1} << 20;
bool take_dirty_and_free(unsigned char** live, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    live[i] = static_cast<unsigned char*>(std::malloc(big_block));
    if (live[i] == nullptr) return false;
    std::memset(live[i], 0xff, big_block);
  }
  for (std::size_t i = 0; i < count; ++i) std::free(live[i]);
  return true;
}
long pages(std::size_t bytes) { return static_cast<long>(bytes / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE))); }
// Polls (a fallback allocation and free each) every 100 ms until `bytes`
// have left the resident set or 3 s have passed; returns what left.
long wait_for_return(long held, std::size_t bytes) {
  long now = held;
  for (int i = 0; i < 30 && held - now < pages(bytes); ++i) {
    ::usleep(100 * 1000);
    std::free(call_malloc(big_block));
    now = resident_pages();
  }
  return held - now;
}

TEST(MallocApi, LargeBlocksAreReusedThenTheirPagesGoBackAfterTheDelay) {
  constexpr std::size_t count = 64;
  unsigned char* live[count];
  // Within the delay, taking them again faults almost no page in (glibc's
  // defaults trimmed them at free: 16k faults for the 64 MiB), though a
  // poll ran in between. A run that a descheduling pushed past the delay is
  // tried again, up to three times.
  long faults = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSERT_TRUE(take_dirty_and_free(live, count));
    std::free(call_malloc(big_block));  // a poll: nothing is due yet
    const long before = minor_faults();
    for (auto& p : live) {
      p = static_cast<unsigned char*>(std::calloc(1, big_block));
      ASSERT_NE(p, nullptr);
      for (std::size_t i = 0; i < big_block; i += 512) ASSERT_EQ(p[i], 0) << "calloc left a dirty byte at " << i;
      ASSERT_EQ(p[big_block - 1], 0);
      std::memset(p, 0x5a, big_block);
    }
    faults = minor_faults() - before;
    for (auto* p : live) std::free(p);
    if (faults < pages(count * big_block) / 8) break;
  }
  EXPECT_LT(faults, pages(count * big_block) / 8) << "64 MiB taken again within the delay faulted in " << faults << " pages";
  // Past the delay, a poll trims: at least 48 of the 64 MiB leave.
  ASSERT_TRUE(take_dirty_and_free(live, count));  // resident now, whatever a late trim did above
  const long held = resident_pages();
  const long gone = wait_for_return(held, 48 * big_block);
  EXPECT_GE(gone, pages(48 * big_block)) << "resident pages went from " << held << " down by only " << gone;
  // The same from a worker thread: its blocks are the same heap's.
  bool ok = false;
  std::thread([&] { ok = take_dirty_and_free(live, 32); }).join();
  ASSERT_TRUE(ok);
  const long held_after_thread = resident_pages();
  const long gone_after_thread = wait_for_return(held_after_thread, 24 * big_block);
  EXPECT_GE(gone_after_thread, pages(24 * big_block))
      << "a worker's 32 MiB: resident pages went down by only " << gone_after_thread;
}

TEST(MallocApi, HugeRequestsFailWithEnomem) {
  for (std::size_t n : {SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX - 4095}) {
    errno = 0;
    EXPECT_EQ(call_malloc(n), nullptr) << n;
    EXPECT_EQ(errno, ENOMEM) << n;
  }
}

TEST(MallocApi, ReallocKeepsContentsAcrossClassesAndTheFallback) {
  const std::size_t steps[] = {1, 8, 17, 100, 256, 300, 1000, 5000, 9000, 70000, 200000, 9000, 300, 24, 3};
  auto* p = static_cast<unsigned char*>(call_malloc(1));
  p[0] = 1;
  std::size_t have = 1;
  for (std::size_t n : steps) {
    auto* q = static_cast<unsigned char*>(std::realloc(p, n));
    ASSERT_NE(q, nullptr) << n;
    EXPECT_TRUE(aligned_to(q, 16));
    const std::size_t kept = std::min(have, n);
    for (std::size_t k = 0; k < kept; ++k) ASSERT_EQ(q[k], static_cast<unsigned char>(k * 7 + 1)) << n << " at " << k;
    for (std::size_t k = 0; k < n; ++k) q[k] = static_cast<unsigned char>(k * 7 + 1);
    p = q;
    have = n;
  }
  std::free(p);
}

// realloc(p, 0) frees p (glibc). The thread's shard hands out the last block
// freed to its class first, so the next 40-B block is p again; a block that
// was not freed could not be handed out twice. The checked build also dies
// on a second free of p (MallocCheckedDeathTest below).
TEST(MallocApi, ReallocOfNullAllocatesAndToZeroFrees) {
  void* p = std::realloc(nullptr, 40);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x11, 40);
  EXPECT_EQ(std::realloc(p, 0), nullptr);
  // Freed: p comes back before its slab's other blocks (64 KiB of them) run out.
  std::vector<void*> taken;
  bool back = false;
  while (!back && taken.size() < 65536 / 40) {
    taken.push_back(call_malloc(40));
    back = taken.back() == p;
  }
  EXPECT_TRUE(back) << "realloc(p, 0) did not give p back";
  for (void* q : taken) std::free(q);
}

TEST(MallocApi, AFailedReallocLeavesTheBlock) {
  for (std::size_t n : {48u, 100000u}) {
    auto* p = static_cast<unsigned char*>(call_malloc(n));
    std::memset(p, 0x5a, n);
    errno = 0;
    EXPECT_EQ(std::realloc(p, SIZE_MAX - 64), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    for (std::size_t k = 0; k < n; ++k) ASSERT_EQ(p[k], 0x5a);
    std::free(p);
  }
}

TEST(MallocApi, ReallocOfAnOverAlignedBlockGrowsAndShrinks) {
  for (std::size_t a : {64u, 4096u}) {
    void* p = nullptr;
    ASSERT_EQ(::posix_memalign(&p, a, 1000), 0);
    std::memset(p, 0x3c, 1000);
    auto* q = static_cast<unsigned char*>(std::realloc(p, 100000));  // C's realloc keeps malloc's alignment only
    ASSERT_NE(q, nullptr) << a;
    EXPECT_TRUE(aligned_to(q, 16));
    for (std::size_t k = 0; k < 1000; ++k) ASSERT_EQ(q[k], 0x3c) << a;
    auto* r = static_cast<unsigned char*>(std::realloc(q, 40));  // and back into a pool
    ASSERT_NE(r, nullptr);
    for (std::size_t k = 0; k < 40; ++k) ASSERT_EQ(r[k], 0x3c) << a;
    std::free(r);
  }
}

TEST(MallocApi, Reallocarray) {
  void* p = reallocarray(nullptr, 10, 10);
  ASSERT_NE(p, nullptr);
  errno = 0;
  EXPECT_EQ(reallocarray(p, SIZE_MAX / 4, 8), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  std::free(p);
}

TEST(MallocApi, PosixMemalign) {
  void* p = reinterpret_cast<void*>(0x1);
  for (std::size_t bad : {0u, 3u, 4u, 24u}) {
    EXPECT_EQ(::posix_memalign(&p, bad, 16), EINVAL) << bad;
    EXPECT_EQ(p, reinterpret_cast<void*>(0x1));
  }
  for (std::size_t a : {8u, 16u, 32u, 64u, 4096u, 1u << 20}) {
    for (std::size_t n : {0u, 1u, 100u, 5000u}) {
      void* q = nullptr;
      ASSERT_EQ(::posix_memalign(&q, a, n), 0) << a << " " << n;
      EXPECT_TRUE(aligned_to(q, a)) << a;
      std::memset(q, 1, n);
      std::free(q);
    }
  }
  EXPECT_EQ(::posix_memalign(&p, 64, SIZE_MAX - 4096), ENOMEM);
  EXPECT_EQ(p, reinterpret_cast<void*>(0x1));
}

TEST(MallocApi, AlignedAllocMemalignVallocPvalloc) {
  errno = 0;
  EXPECT_EQ(std::aligned_alloc(3, 16), nullptr);
  EXPECT_EQ(errno, EINVAL);
  void* a = std::aligned_alloc(64, 100);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(aligned_to(a, 64));
  void* m = ::memalign(24, 100);  // glibc rounds the alignment up to 32
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(aligned_to(m, 32));
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  void* v = ::valloc(10);
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(aligned_to(v, page));
  void* pv = ::pvalloc(10);
  ASSERT_NE(pv, nullptr);
  EXPECT_TRUE(aligned_to(pv, page));
  EXPECT_GE(malloc_usable_size(pv), page);
  void* pz = ::pvalloc(0);
  ASSERT_NE(pz, nullptr);
  for (void* p : {a, m, v, pv, pz}) std::free(p);
}

struct alignas(64) Wide {
  unsigned char bytes[64];
};
struct alignas(4096) Page {
  unsigned char bytes[100];
};

TEST(MallocApi, EveryFormOfNewAndDelete) {
  int* i = new int(7);
  EXPECT_EQ(*i, 7);
  delete i;
  int* arr = new int[1000]();
  EXPECT_EQ(arr[999], 0);
  delete[] arr;
  int* nt = new (std::nothrow) int(3);
  ASSERT_NE(nt, nullptr);
  delete nt;
  auto* w = new Wide[3];
  EXPECT_TRUE(aligned_to(w, 64));
  delete[] w;
  auto* pg = new Page;
  EXPECT_TRUE(aligned_to(pg, 4096));
  delete pg;
  void* raw = ::operator new(300, std::align_val_t{128});
  EXPECT_TRUE(aligned_to(raw, 128));
  ::operator delete(raw, 300, std::align_val_t{128});
  void* raw2 = ::operator new(40, std::align_val_t{256}, std::nothrow);
  ASSERT_NE(raw2, nullptr);
  ::operator delete(raw2, std::align_val_t{256}, std::nothrow);
  void* sized = ::operator new(72);
  ::operator delete(sized, 72);
  void* zero = ::operator new(0);
  ASSERT_NE(zero, nullptr);
  ::operator delete(zero, std::size_t{0});
  std::vector<std::string> strings;  // std::allocator's sized deletes
  for (int k = 0; k < 5000; ++k) strings.push_back(std::string(static_cast<std::size_t>(k % 300), 'x'));
  EXPECT_EQ(strings[4999].size(), 4999u % 300);
}

int handler_calls = 0;
void counting_handler() {
  ++handler_calls;
  std::set_new_handler(nullptr);  // the next failure throws
}

TEST(MallocApi, NewThrowsAfterTheNewHandlerAndNothrowReturnsNull) {
  const std::size_t huge = SIZE_MAX / 2;
  EXPECT_EQ(::operator new(huge, std::nothrow), nullptr);
  handler_calls = 0;
  std::set_new_handler(&counting_handler);
  EXPECT_THROW(static_cast<void>(::operator new(huge)), std::bad_alloc);
  EXPECT_EQ(handler_calls, 1);
  EXPECT_THROW(static_cast<void>(::operator new[](huge, std::align_val_t{64})), std::bad_alloc);
  // Thrown by the program's own libstdc++, not the library's static copy:
  // caught here, it leaves no uncaught exception behind.
  EXPECT_EQ(std::uncaught_exceptions(), 0);
}

TEST(MallocApi, NothrowNewCallsTheHandlerThenReturnsNull) {
  handler_calls = 0;
  std::set_new_handler(&counting_handler);
  EXPECT_EQ(::operator new(SIZE_MAX / 2, std::nothrow), nullptr);
  EXPECT_EQ(handler_calls, 1);
}

// fork() while other threads hold the allocator's locks: the child must be
// able to allocate, free and start a thread of its own.
TEST(MallocApi, ForkInAThreadedProcess) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> churners;
  for (unsigned t = 0; t < 3; ++t)
    churners.emplace_back([&stop, t] {
      std::mt19937 rng(t);
      std::vector<void*> held(64, nullptr);
      while (!stop.load(std::memory_order_relaxed)) {
        void*& slot = held[rng() % held.size()];
        std::free(slot);
        slot = call_malloc(1 + rng() % 3000);
      }
      for (void* p : held) std::free(p);
    });
  for (int round = 0; round < 40; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::alarm(20);  // a deadlocked child dies instead of hanging the test
      std::vector<void*> blocks;
      for (int k = 0; k < 2000; ++k) blocks.push_back(call_malloc(1 + static_cast<std::size_t>(k) * 37 % 5000));
      for (void* p : blocks) std::free(p);
      std::thread th([] {
        for (int k = 0; k < 1000; ++k) std::free(call_malloc(static_cast<std::size_t>(k % 700) + 1));
      });
      th.join();
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child " << round << " died: signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ASSERT_EQ(WEXITSTATUS(status), 0);
  }
  stop = true;
  for (auto& th : churners) th.join();
}

// Short-lived threads that allocate, free each other's blocks and exit:
// contents survive, and nothing a dead thread cached is handed out twice.
TEST(MallocApi, ThreadsThatExitAndFreeEachOthersBlocks) {
  const unsigned seed = 7;
  std::printf("seed %u\n", seed);
  std::vector<std::vector<unsigned char*>> handoff(64);  // [wave % 8 * 8 + thread]
  for (unsigned wave = 0; wave < 8; ++wave) {
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < 8; ++t)
      ts.emplace_back([&, t, wave] {
        const unsigned me = wave * 8 + t;  // seeds this thread's sizes
        // The blocks of the previous wave's next thread (exited by now).
        // Each block carries its writer and index: a block handed out twice
        // would carry another block's tag.
        const unsigned prev = ((wave + 7) % 8) * 8 + (t + 1) % 8;
        std::uint32_t k = 0;
        for (unsigned char* p : handoff[prev]) {
          if (p == nullptr) continue;
          ASSERT_GE(malloc_usable_size(p), 8u);
          std::uint32_t tag[2];
          std::memcpy(tag, p, sizeof tag);
          ASSERT_EQ(tag[0], prev) << "block of another thread's list";
          ASSERT_EQ(tag[1], k++) << "block of another index";
          std::free(p);
        }
        std::mt19937 rng(seed + me);
        std::vector<unsigned char*> out;
        for (std::uint32_t i = 0; i < 500; ++i) {
          auto* p = static_cast<unsigned char*>(call_malloc(8 + rng() % 2000));
          const std::uint32_t tag[2] = {(wave % 8) * 8 + t, i};
          std::memcpy(p, tag, sizeof tag);
          out.push_back(p);
        }
        handoff[(wave % 8) * 8 + t] = std::move(out);
      });
    for (auto& th : ts) th.join();
    for (unsigned t = 0; t < 8; ++t) handoff[((wave + 7) % 8) * 8 + t].clear();  // freed by this wave
  }
  for (auto& list : handoff)
    for (unsigned char* p : list) std::free(p);
}

// ---- Checked build only (meson.build filters these out of the unchecked run) ----
TEST(MallocCheckedDeathTest, ForeignPointerIsDiagnosed) {
  static unsigned char not_from_malloc[64];
  EXPECT_DEATH(std::free(not_from_malloc + 16), "sydra-alloc: .*(foreign|not allocated)");
}
TEST(MallocCheckedDeathTest, PooledDoubleFreeIsDiagnosed) {
  EXPECT_DEATH(
      {
        void* p = call_malloc(48);
        std::free(p);
        std::free(p);
      },
      "sydra-alloc: double free");
}
TEST(MallocCheckedDeathTest, FallbackDoubleFreeIsDiagnosed) {
  EXPECT_DEATH(
      {
        void* p = call_malloc(100000);
        std::free(p);
        std::free(p);
      },
      "sydra-alloc: double free");
}
TEST(MallocCheckedDeathTest, ReallocToZeroFreedTheBlock) {
  EXPECT_DEATH(
      {
        void* p = call_malloc(40);
        static_cast<void>(std::realloc(p, 0));
        std::free(p);
      },
      "sydra-alloc: double free");
}
TEST(MallocCheckedDeathTest, InteriorPointerIsDiagnosed) {
  EXPECT_DEATH(
      {
        auto* p = static_cast<char*>(call_malloc(64));
        std::free(p + 16);
      },
      "sydra-alloc: .*(interior|not the start|middle)");
}

}  // namespace
