// bench-memory: what each allocator costs in resident memory, one scenario
// per process so that no scenario's leftovers colour the next one.
//
//   bench-memory ALLOCATOR SCENARIO [ARGS...]
//
//   ALLOCATOR  glibc | mimalloc | jemalloc   plain malloc/free of this process; the peer must
//                                            have been put there with LD_PRELOAD (checked)
//              sydra                         the 4-shard small_pool handle, glibc underneath
//
//   rss-per-byte SIZE [BLOCKS]        BLOCKS (1 Mi) live blocks of SIZE bytes
//   rss-per-byte-range LO HI [BYTES]  live blocks of sizes log-uniform over LO..HI until
//                                     BYTES (1 GiB) are requested
//   free-all-trim [BLOCKS]            BLOCKS blocks of 16, 64 and 256 B in turn, all freed, then trim
//   phase-shift FROM TO [BYTES]       fill BYTES (64 MiB) with FROM-byte blocks, free all,
//                                     fill the same bytes with TO-byte blocks
//   churn-peak LO HI [THREADS] [SLOTS] [OPS]
//                                     the larson-like churn (churn.hpp), SLOTS (64 Ki) live blocks,
//                                     OPS (2 M) operations per thread on THREADS (2) threads
//   per-thread N                      N threads with 64 KiB stacks each hold 4 blocks of each of
//                                     11 classes (16..1024 B), free them and stay alive, then exit
//
// Each prints one JSON object on one line to stdout. RSS and peak RSS come
// from VmRSS and VmHWM in /proc/self/status (kB). Every scenario first makes
// one allocation and frees it, so that each allocator's one-time start-up
// is outside the measurement, then reads its baseline. Memory the harness
// itself needs (pointer arrays) is mmap'ed and touched before the baseline.
#include "bench_common.hpp"
#include "churn.hpp"
#include "peers.hpp"
#include "sydra_adapters.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace sydra_bench;

enum class Peer { glibc, mimalloc, jemalloc, sydra };

struct ProcStatus {
  long rss_kib = -1;
  long hwm_kib = -1;
};

ProcStatus read_status() {
  ProcStatus s;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::strtol(line.c_str() + 6, nullptr, 10);
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_kib = std::strtol(line.c_str() + 6, nullptr, 10);
  }
  if (s.rss_kib < 0 || s.hwm_kib < 0) {
    std::fprintf(stderr, "bench-memory: cannot read VmRSS/VmHWM from /proc/self/status\n");
    std::exit(2);
  }
  return s;
}
long rss_kib() { return read_status().rss_kib; }

// The harness's own storage (pointers, sizes): outside every allocator,
// resident before the baseline is read.
template <class T>
class MappedArray {
 public:
  explicit MappedArray(std::size_t n) : n_(n) {
    void* m = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      std::perror("bench-memory: mmap");
      std::exit(2);
    }
    p_ = static_cast<T*>(m);
    std::memset(static_cast<void*>(p_), 0, bytes());
  }
  ~MappedArray() { ::munmap(p_, bytes()); }
  MappedArray(const MappedArray&) = delete;
  MappedArray& operator=(const MappedArray&) = delete;
  T& operator[](std::size_t i) noexcept { return p_[i]; }
  std::size_t size() const noexcept { return n_; }

 private:
  std::size_t bytes() const noexcept { return n_ * sizeof(T); }
  T* p_;
  std::size_t n_;
};
using PointerArray = MappedArray<void*>;

// ---- The allocators, each with its own way to give memory back ---------------------

// malloc/free of the process: glibc, or the peer LD_PRELOAD put in its place.
struct ProcessMalloc {
  Peer peer;
  static bool available(std::string*) { return true; }
  void* alloc(std::size_t n, std::size_t) noexcept { return std::malloc(n); }
  void free(void* p, std::size_t, std::size_t) noexcept { std::free(p); }

  // Each allocator's own "give back what you can" call, so that the
  // after-trim number is each one at its best.
  std::optional<std::size_t> trim() const noexcept {
    switch (peer) {
      case Peer::glibc:
        ::malloc_trim(0);
        return 0;
      case Peer::mimalloc:
        if (auto collect = reinterpret_cast<void (*)(bool)>(::dlsym(RTLD_DEFAULT, "mi_collect"))) {
          collect(true);
          return 0;
        }
        return std::nullopt;
      case Peer::jemalloc:
        if (auto ctl = reinterpret_cast<int (*)(const char*, void*, std::size_t*, void*, std::size_t)>(
                ::dlsym(RTLD_DEFAULT, "mallctl"))) {
          ctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
          ctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);  // 4096 = MALLCTL_ARENAS_ALL
          return 0;
        }
        return std::nullopt;
      case Peer::sydra:
        break;
    }
    return std::nullopt;
  }
};

struct SydraMem : Sydra {
  std::optional<std::size_t> trim() noexcept { return sydra_trim(h); }
};

constexpr std::size_t kAlign = 8;

void fill_block(void* p, std::size_t n, std::size_t i) noexcept {
  std::memset(p, static_cast<int>(i), n);  // every byte: resident as a program's data would be
}

void must(void* p, std::size_t n) {
  if (p == nullptr) {
    std::fprintf(stderr, "bench-memory: allocation of %zu bytes failed\n", n);
    std::exit(2);
  }
}

std::string trim_json(const std::optional<std::size_t>& t) {
  return t ? "true, \"trim_returned_bytes\": " + std::to_string(*t) : std::string("false");
}

// ---- Scenarios --------------------------------------------------------------------

template <class A>
void rss_per_byte(A& a, const std::string& head, std::size_t size, std::size_t blocks) {
  PointerArray ptrs(blocks);
  const long before = rss_kib();
  for (std::size_t i = 0; i < blocks; ++i) {
    ptrs[i] = a.alloc(size, kAlign);
    must(ptrs[i], size);
    fill_block(ptrs[i], size, i);
  }
  const long live = rss_kib();
  const double requested = static_cast<double>(size) * static_cast<double>(blocks);
  const double per_byte = static_cast<double>(live - before) * 1024.0 / requested;
  for (std::size_t i = 0; i < blocks; ++i) a.free(ptrs[i], size, kAlign);
  std::printf("{%s, \"size\": %zu, \"blocks\": %zu, \"rss_before_kib\": %ld, \"rss_live_kib\": %ld, "
              "\"requested_bytes\": %.0f, \"rss_per_byte\": %.4f}\n",
              head.c_str(), size, blocks, before, live, requested, per_byte);
}

// Issue 17: the pooled range above 1 KiB, where a size class's rounding and a
// slab's tail cost more per byte than at 16-256 B. Sizes are log-uniform
// (every octave equally likely, as in the 16-32768:log churn) and drawn
// from a fixed seed, so every allocator gets the same sequence.
template <class A>
void rss_per_byte_range(A& a, const std::string& head, std::size_t lo, std::size_t hi, std::size_t bytes) {
  // Enough pointer slots for the worst case (every block of size lo), and
  // the sizes kept beside them for the sized free.
  const std::size_t cap = bytes / lo + 1;
  PointerArray ptrs(cap);
  MappedArray<std::size_t> sizes(cap);
  Xorshift64 rng(0x17);
  const long before = rss_kib();
  double requested = 0;
  std::size_t blocks = 0;
  while (requested < static_cast<double>(bytes) && blocks < cap) {
    const std::size_t n = log_uniform_size(rng, lo, hi);
    ptrs[blocks] = a.alloc(n, kAlign);
    must(ptrs[blocks], n);
    fill_block(ptrs[blocks], n, blocks);
    sizes[blocks] = n;
    requested += static_cast<double>(n);
    ++blocks;
  }
  const long live = rss_kib();
  const double per_byte = static_cast<double>(live - before) * 1024.0 / requested;
  for (std::size_t i = 0; i < blocks; ++i) a.free(ptrs[i], sizes[i], kAlign);
  std::printf("{%s, \"lo\": %zu, \"hi\": %zu, \"blocks\": %zu, \"rss_before_kib\": %ld, \"rss_live_kib\": %ld, "
              "\"requested_bytes\": %.0f, \"rss_per_byte\": %.4f}\n",
              head.c_str(), lo, hi, blocks, before, live, requested, per_byte);
}

template <class A>
void free_all_trim(A& a, const std::string& head, std::size_t blocks) {
  constexpr std::size_t sizes[] = {16, 64, 256};
  PointerArray ptrs(blocks);
  const long start = rss_kib();
  double requested = 0;
  for (std::size_t i = 0; i < blocks; ++i) {
    const std::size_t n = sizes[i % 3];
    ptrs[i] = a.alloc(n, kAlign);
    must(ptrs[i], n);
    fill_block(ptrs[i], n, i);
    requested += static_cast<double>(n);
  }
  const long full = rss_kib();
  for (std::size_t i = 0; i < blocks; ++i) a.free(ptrs[i], sizes[i % 3], kAlign);
  const long freed = rss_kib();
  const std::optional<std::size_t> trimmed = a.trim();
  const long after = rss_kib();
  std::printf("{%s, \"blocks\": %zu, \"requested_bytes\": %.0f, \"rss_start_kib\": %ld, \"rss_full_kib\": %ld, "
              "\"rss_freed_kib\": %ld, \"rss_trimmed_kib\": %ld, \"freed_delta_kib\": %ld, "
              "\"trimmed_delta_kib\": %ld, \"trim\": %s}\n",
              head.c_str(), blocks, requested, start, full, freed, after, freed - start, after - start,
              trim_json(trimmed).c_str());
}

template <class A>
void phase_shift(A& a, const std::string& head, std::size_t from, std::size_t to, std::size_t bytes) {
  const std::size_t n1 = bytes / from, n2 = bytes / to;
  PointerArray ptrs(n1 > n2 ? n1 : n2);
  const long base = rss_kib();
  for (std::size_t i = 0; i < n1; ++i) {
    ptrs[i] = a.alloc(from, kAlign);
    must(ptrs[i], from);
    fill_block(ptrs[i], from, i);
  }
  const ProcStatus p1 = read_status();
  for (std::size_t i = 0; i < n1; ++i) a.free(ptrs[i], from, kAlign);
  const long freed = rss_kib();
  for (std::size_t i = 0; i < n2; ++i) {
    ptrs[i] = a.alloc(to, kAlign);
    must(ptrs[i], to);
    fill_block(ptrs[i], to, i);
  }
  const ProcStatus p2 = read_status();
  for (std::size_t i = 0; i < n2; ++i) a.free(ptrs[i], to, kAlign);
  // VmHWM only grows, so p2.hwm is the peak over both phases: the ratio is
  // how much higher the second phase took the process than the first did.
  const double ratio = static_cast<double>(p2.hwm_kib - base) / static_cast<double>(p1.hwm_kib - base);
  std::printf("{%s, \"from\": %zu, \"to\": %zu, \"bytes\": %zu, \"rss_base_kib\": %ld, \"rss_phase1_kib\": %ld, "
              "\"hwm_phase1_kib\": %ld, \"rss_freed_kib\": %ld, \"rss_phase2_kib\": %ld, \"hwm_phase2_kib\": %ld, "
              "\"peak_ratio\": %.4f}\n",
              head.c_str(), from, to, bytes, base, p1.rss_kib, p1.hwm_kib, freed, p2.rss_kib, p2.hwm_kib, ratio);
}

template <class A>
void churn_peak(A& a, const std::string& head, SizeRange r, int threads, std::size_t slots, std::size_t ops) {
  Churn<A, kAlign> churn(a, slots, r);  // the slot array belongs to the baseline
  const ProcStatus before = read_status();
  Xorshift64 fill_rng(0xF111);
  churn.fill(fill_rng);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&churn, t, ops] {
      Xorshift64 rng(static_cast<std::uint64_t>(t) + 1);
      churn.run(rng, ops);
    });
  for (std::thread& t : ts) t.join();
  const ProcStatus after = read_status();
  churn.drain();
  const double live_requested = static_cast<double>(slots) * static_cast<double>(r.lo + r.hi) / 2.0;
  std::printf("{%s, \"lo\": %zu, \"hi\": %zu, \"threads\": %d, \"slots\": %zu, \"ops_per_thread\": %zu, "
              "\"live_requested_bytes\": %.0f, \"rss_before_kib\": %ld, \"hwm_before_kib\": %ld, "
              "\"rss_end_kib\": %ld, \"hwm_kib\": %ld, \"peak_delta_kib\": %ld}\n",
              head.c_str(), r.lo, r.hi, threads, slots, ops, live_requested, before.rss_kib, before.hwm_kib,
              after.rss_kib, after.hwm_kib, after.hwm_kib - before.rss_kib);
}

// Issue 14's shape: per-thread cost with blocks live, freed (thread idle), and after exit.
constexpr std::array<std::size_t, 11> kThreadClasses = {16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024};
constexpr std::size_t kBlocksPerClass = 4;
constexpr std::size_t kThreadStack = 64 * 1024;

template <class A>
struct PerThread {
  A* a;
  pthread_barrier_t* barrier;
  void* blocks[kThreadClasses.size() * kBlocksPerClass];

  static void* run(void* arg) {
    auto* self = static_cast<PerThread*>(arg);
    A& a = *self->a;
    std::size_t k = 0;
    for (std::size_t n : kThreadClasses)
      for (std::size_t j = 0; j < kBlocksPerClass; ++j) {
        void* p = a.alloc(n, kAlign);
        must(p, n);
        fill_block(p, n, j);
        self->blocks[k++] = p;
      }
    pthread_barrier_wait(self->barrier);  // 1: blocks live
    pthread_barrier_wait(self->barrier);  // 2: main has measured
    k = 0;
    for (std::size_t n : kThreadClasses)
      for (std::size_t j = 0; j < kBlocksPerClass; ++j) a.free(self->blocks[k++], n, kAlign);
    pthread_barrier_wait(self->barrier);  // 3: freed, idle
    pthread_barrier_wait(self->barrier);  // 4: main has measured; exit
    return nullptr;
  }
};

template <class A>
void per_thread(A& a, const std::string& head, std::size_t n_threads) {
  std::vector<PerThread<A>> states(n_threads);  // before the baseline: the harness's, not the allocator's
  std::vector<pthread_t> ids(n_threads);
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, nullptr, static_cast<unsigned>(n_threads + 1));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kThreadStack);
  const long base = rss_kib();
  for (std::size_t i = 0; i < n_threads; ++i) {
    states[i].a = &a;
    states[i].barrier = &barrier;
    if (int e = pthread_create(&ids[i], &attr, &PerThread<A>::run, &states[i]); e != 0) {
      std::fprintf(stderr, "bench-memory: pthread_create of thread %zu failed: %s\n", i, std::strerror(e));
      std::exit(2);
    }
  }
  pthread_barrier_wait(&barrier);  // 1
  const long live = rss_kib();
  pthread_barrier_wait(&barrier);  // 2
  pthread_barrier_wait(&barrier);  // 3
  const long idle = rss_kib();
  pthread_barrier_wait(&barrier);  // 4
  for (pthread_t t : ids) pthread_join(t, nullptr);
  const long exited = rss_kib();
  pthread_attr_destroy(&attr);
  pthread_barrier_destroy(&barrier);
  const double n = static_cast<double>(n_threads);
  std::size_t requested = 0;
  for (std::size_t c : kThreadClasses) requested += c * kBlocksPerClass;
  std::printf("{%s, \"threads\": %zu, \"stack_bytes\": %zu, \"requested_per_thread\": %zu, \"rss_base_kib\": %ld, "
              "\"rss_live_kib\": %ld, \"rss_idle_kib\": %ld, \"rss_exited_kib\": %ld, \"live_kib_per_thread\": %.3f, "
              "\"idle_kib_per_thread\": %.3f, \"exited_kib_per_thread\": %.3f}\n",
              head.c_str(), n_threads, kThreadStack, requested, base, live, idle, exited,
              static_cast<double>(live - base) / n, static_cast<double>(idle - base) / n,
              static_cast<double>(exited - base) / n);
}

// ---- Command line -----------------------------------------------------------------

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench-memory glibc|mimalloc|jemalloc|sydra SCENARIO [ARGS]\n"
               "  rss-per-byte SIZE [BLOCKS]\n  rss-per-byte-range LO HI [BYTES]\n  free-all-trim [BLOCKS]\n  phase-shift FROM TO [BYTES]\n"
               "  churn-peak LO HI [THREADS] [SLOTS] [OPS]\n  per-thread N\n");
  std::exit(2);
}

std::size_t arg(int argc, char** argv, int i, std::size_t fallback) {
  if (i >= argc) return fallback;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(argv[i], &end, 10);
  if (end == argv[i] || *end != '\0' || v == 0) usage();
  return static_cast<std::size_t>(v);
}

template <class A>
int run(A& a, const std::string& head, int argc, char** argv) {
  // One allocation first: each allocator's start-up is not what is measured.
  a.free(a.alloc(64, kAlign), 64, kAlign);
  const std::string scenario = argv[2];
  if (scenario == "rss-per-byte" && argc >= 4) {
    rss_per_byte(a, head, arg(argc, argv, 3, 0), arg(argc, argv, 4, std::size_t{1} << 20));
  } else if (scenario == "rss-per-byte-range" && argc >= 5) {
    const std::size_t lo = arg(argc, argv, 3, 0), hi = arg(argc, argv, 4, 0);
    if (hi < lo) usage();
    rss_per_byte_range(a, head, lo, hi, arg(argc, argv, 5, std::size_t{1} << 30));
  } else if (scenario == "free-all-trim") {
    free_all_trim(a, head, arg(argc, argv, 3, std::size_t{1} << 20));
  } else if (scenario == "phase-shift" && argc >= 5) {
    phase_shift(a, head, arg(argc, argv, 3, 0), arg(argc, argv, 4, 0), arg(argc, argv, 5, std::size_t{64} << 20));
  } else if (scenario == "churn-peak" && argc >= 5) {
    const SizeRange r{arg(argc, argv, 3, 0), arg(argc, argv, 4, 0)};
    if (r.lo < 4 || r.hi < r.lo) usage();  // each block holds its 4-byte size
    churn_peak(a, head, r, static_cast<int>(arg(argc, argv, 5, 2)), arg(argc, argv, 6, std::size_t{1} << 16),
               arg(argc, argv, 7, 2'000'000));
  } else if (scenario == "per-thread" && argc >= 4) {
    per_thread(a, head, arg(argc, argv, 3, 0));
  } else {
    usage();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) usage();
  const std::string name = argv[1];
  const std::string provider = malloc_provider();
  struct Choice {
    const char* name;
    Peer peer;
    const char* expect;  // the file malloc must come from
  };
  constexpr Choice choices[] = {
      {"glibc", Peer::glibc, "libc.so"},
      {"mimalloc", Peer::mimalloc, "libmimalloc"},
      {"jemalloc", Peer::jemalloc, "libjemalloc"},
      {"sydra", Peer::sydra, "libc.so"},  // sydra's slabs and fallback come from glibc
  };
  const Choice* choice = nullptr;
  for (const Choice& c : choices)
    if (name == c.name) choice = &c;
  if (choice == nullptr) usage();
  const Peer peer = choice->peer;
  const char* expect = choice->expect;
  // A peer that LD_PRELOAD did not actually install would report glibc's
  // numbers under another name: refuse.
  if (!provider_is(provider, expect)) {
    std::fprintf(stderr, "bench-memory: %s requested, but malloc comes from %s (expected %s*; set LD_PRELOAD)\n",
                 name.c_str(), provider.c_str(), expect);
    return 2;
  }
  const std::string head = "\"scenario\": \"" + std::string(argv[2]) + "\", \"allocator\": \"" + name +
                           "\", \"malloc_provider\": \"" + provider + "\"";
  if (peer == Peer::sydra) {
    SydraMem a{};
    return run(a, head + ", \"sydra\": \"" + sydra_description() + "\"", argc, argv);
  }
  ProcessMalloc a{peer};
  return run(a, head, argc, argv);
}
