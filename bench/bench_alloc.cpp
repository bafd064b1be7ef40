// bench-alloc: sydra-alloc's small_pool paths side by side with glibc,
// mimalloc and an ideal free list, in one executable so that one run compares
// them on the same machine state. See bench/README.md for the method and
// tools/bench_report.py for the ratios computed from the JSON output.
//
// Every family reports items_per_second with one item = one alloc+free pair
// (or one enter+leave pair, or one block through the producer/consumer ring),
// so "ns per pair" is always 1e9 / items_per_second, whatever the batch size.
#include <sydra/alloc/modes.hpp>

#include <benchmark/benchmark.h>
#include <dlfcn.h>
// Only lib/ includes mimalloc.h; the three entry points used here are
// declared by hand (they are stable across mimalloc 2.x and 3.x).
extern "C" {
void* mi_malloc(std::size_t size);
void mi_free(void* p);
bool mi_is_in_heap_region(const void* p);
}

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

namespace sa = sydra::alloc;

// ---- Policies and handles ------------------------------------------------------

// The bucket path alone (no shard manager at all), with each lock.
struct BucketsTimedPolicy {
  static constexpr const char* name = "buckets-timed";
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<sa::TimedLock<>>;
  using Fallback = sa::Tracked<sa::Audited<sa::SystemHeap>>;
};
struct BucketsPlainPolicy {
  static constexpr const char* name = "buckets-plain";
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<sa::PlainLock<>>;
  using Fallback = sa::Tracked<sa::Audited<sa::SystemHeap>>;
};

using ShardHandle = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
using TimedHandle = sa::BasicAllocatorHandle<BucketsTimedPolicy>;
using PlainHandle = sa::BasicAllocatorHandle<BucketsPlainPolicy>;

constexpr std::size_t kAlign = 8;  // the pooled paths serve align <= 8 only

// One small_pool handle with 4 shards for every shard benchmark (and the
// producer/consumer and epoch ones): this thread binds to it once and keeps
// its shard. Using several sharded handles from one thread would make each
// switch rebind the thread-local cache, which is not what we measure.
ShardHandle& shard_handle() {
  static ShardHandle h(ShardHandle::Options{.pool = {.shards = 4}});
  return h;
}
// small_pool with allocator_shards = 0: the policy the build uses, bucket path.
ShardHandle& noshard_handle() {
  static ShardHandle h(ShardHandle::Options{.pool = {.shards = 0}});
  return h;
}
TimedHandle& timed_handle() {
  static TimedHandle h;
  return h;
}
PlainHandle& plain_handle() {
  static PlainHandle h;
  return h;
}

// Writes one byte into the block and hides the pointer from the optimizer.
inline void touch(void*& p) {
  static_cast<unsigned char*>(p)[0] = 1;
  benchmark::DoNotOptimize(p);
}

// ---- Allocator adapters ----------------------------------------------------------

template <class Handle, Handle& (*Get)()>
struct Sydra {
  Handle& h = Get();
  void* alloc(std::size_t n) noexcept { return h.alloc(n, kAlign); }
  void free(void* p, std::size_t n) noexcept { h.free(p, n, kAlign); }
};
using SydraShard = Sydra<ShardHandle, shard_handle>;
using SydraNoShard = Sydra<ShardHandle, noshard_handle>;
using SydraTimed = Sydra<TimedHandle, timed_handle>;
using SydraPlain = Sydra<PlainHandle, plain_handle>;

// glibc's malloc and free, taken from libc.so.6 itself. Linking libmimalloc
// (for the mimalloc variants) interposes malloc/free for the whole process,
// and Debian's libmimalloc also defines __libc_malloc/__libc_free (it
// forwards them to mi_malloc/mi_free), so neither name reaches glibc here.
// dlsym on libc's own handle resolves within libc.so.6 and does.
struct GlibcApi {
  using MallocFn = void* (*)(std::size_t);
  using FreeFn = void (*)(void*);
  MallocFn malloc_fn = nullptr;
  FreeFn free_fn = nullptr;
  GlibcApi() noexcept {
    void* libc = ::dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (libc != nullptr) {
      malloc_fn = reinterpret_cast<MallocFn>(::dlsym(libc, "malloc"));
      free_fn = reinterpret_cast<FreeFn>(::dlsym(libc, "free"));
    }
    void* probe = malloc_fn != nullptr && free_fn != nullptr ? malloc_fn(64) : nullptr;
    // The point of the variant: a glibc block must not be a mimalloc block.
    if (probe == nullptr || mi_is_in_heap_region(probe)) {
      std::fprintf(stderr, "bench-alloc: cannot reach glibc's own malloc (dlsym on libc.so.6)\n");
      std::abort();
    }
    free_fn(probe);
  }
};
const GlibcApi glibc_api;

inline void* glibc_malloc(std::size_t n) noexcept { return glibc_api.malloc_fn(n); }
inline void glibc_free(void* p) noexcept { glibc_api.free_fn(p); }

struct Glibc {
  void* alloc(std::size_t n) noexcept { return glibc_malloc(n); }
  void free(void* p, std::size_t) noexcept { glibc_free(p); }
};

struct Mimalloc {
  void* alloc(std::size_t n) noexcept { return mi_malloc(n); }
  void free(void* p, std::size_t) noexcept { mi_free(p); }
};

// The ideal: an intrusive singly-linked free list, nothing else. The head is
// in memory (the list object escapes), as any allocator's list head is, so
// DoNotOptimize's memory clobber makes it reload and store it every pair.
struct Node {
  Node* next;
};
struct IdealList {
  Node* head = nullptr;
  std::vector<void*> owned;
  IdealList(std::size_t size, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      void* p = glibc_malloc(size < sizeof(Node) ? sizeof(Node) : size);
      owned.push_back(p);
      auto* n = static_cast<Node*>(p);
      n->next = head;
      head = n;
    }
    benchmark::DoNotOptimize(this);
  }
  ~IdealList() {
    for (void* p : owned) glibc_free(p);
  }
  IdealList(const IdealList&) = delete;
  IdealList& operator=(const IdealList&) = delete;
};

struct IdealInline {
  IdealList& l;
  void* alloc(std::size_t) noexcept {
    Node* n = l.head;
    l.head = n->next;
    return n;
  }
  void free(void* p, std::size_t) noexcept {
    auto* n = static_cast<Node*>(p);
    n->next = l.head;
    l.head = n;
  }
};

__attribute__((noinline)) void* ideal_pop(IdealList& l) noexcept {
  Node* n = l.head;
  l.head = n->next;
  return n;
}
__attribute__((noinline)) void ideal_push(IdealList& l, void* p) noexcept {
  auto* n = static_cast<Node*>(p);
  n->next = l.head;
  l.head = n;
}
struct IdealCall {
  IdealList& l;
  void* alloc(std::size_t) noexcept { return ideal_pop(l); }
  void free(void* p, std::size_t) noexcept { ideal_push(l, p); }
};

// ---- 1. Single alloc+free pair ---------------------------------------------------

template <class A>
void run_pair(benchmark::State& state, A a) {
  const auto n = static_cast<std::size_t>(state.range(0));
  a.free(a.alloc(n), n);  // warm-up outside the timing: first bind, first slab
  for (auto _ : state) {
    void* p = a.alloc(n);
    touch(p);
    a.free(p, n);
    // The next pop must really load the list head: without this the compiler
    // forwards the pushed pointer into the next iteration (the ideal loop then
    // does no pop at all).
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

template <class A>
void BM_Pair(benchmark::State& state) {
  run_pair(state, A{});
}
void BM_Pair_IdealInline(benchmark::State& state) {
  IdealList l(static_cast<std::size_t>(state.range(0)), 8);
  run_pair(state, IdealInline{l});
}
void BM_Pair_IdealCall(benchmark::State& state) {
  IdealList l(static_cast<std::size_t>(state.range(0)), 8);
  run_pair(state, IdealCall{l});
}

// ---- 2. Batches: 64 allocs, then 64 frees (LIFO) ---------------------------------

constexpr std::size_t kBatch = 64;

template <class A>
void run_batch(benchmark::State& state, A a) {
  const auto n = static_cast<std::size_t>(state.range(0));
  void* ptrs[kBatch];
  for (std::size_t i = 0; i < kBatch; ++i) ptrs[i] = a.alloc(n);  // warm-up
  for (std::size_t i = kBatch; i-- > 0;) a.free(ptrs[i], n);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      ptrs[i] = a.alloc(n);
      touch(ptrs[i]);
    }
    for (std::size_t i = kBatch; i-- > 0;) a.free(ptrs[i], n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kBatch));
}

template <class A>
void BM_Batch64(benchmark::State& state) {
  run_batch(state, A{});
}
void BM_Batch64_IdealInline(benchmark::State& state) {
  IdealList l(static_cast<std::size_t>(state.range(0)), kBatch + 8);
  run_batch(state, IdealInline{l});
}

// ---- 3. Bucket free with 1 vs 2000 slabs live --------------------------------------

// 256-byte class: (64 KiB - header) / 256 = 255 blocks per slab. A fresh
// handle per run, so that the slabs are exactly the ones filled here. All
// blocks of `slabs` slabs are kept live; the timed loop frees one block and
// allocates one (LIFO: the same block comes back), walking a shuffled working
// set of `ws_blocks` blocks, each in a different slab (spread evenly over all
// of them) except in the one-slab case, where it is every block of the slab.
//
//   BM_BucketFree_Slabs/1            255 blocks of the one slab
//   BM_BucketFree_Slabs/2000         one block in each of the 2000 slabs: every
//                                    free looks up and reads another slab header
//   BM_BucketFree_SlabsWS255/2000    control: 2000 slabs live, but a working set
//                                    as large as /1's (255 blocks in 255 slabs),
//                                    so only the number of live slabs differs
void run_slabs(benchmark::State& state, std::size_t slabs, std::size_t ws_blocks) {
  constexpr std::size_t size = 256;
  const std::size_t per_slab = (sa::slab_bytes - sa::SlabHeader::blocks_offset()) / size;
  auto h = std::make_unique<TimedHandle>();
  std::vector<void*> live(slabs * per_slab);
  for (void*& p : live) p = h->alloc(size, kAlign);

  std::unordered_set<const void*> headers;
  for (void* p : live) headers.insert(sa::Pagemap::lookup(p));
  if (headers.size() != slabs || headers.count(nullptr) != 0) {
    state.SkipWithError("the live blocks do not fill exactly the requested number of slabs");
    for (void* p : live) h->free(p, size, kAlign);
    return;
  }

  // Indices into `live`; it was carved slab by slab, so block b of slab s is
  // live[s * per_slab + b]. Shuffled with a fixed seed.
  std::vector<std::size_t> ws;
  if (slabs == 1) {
    for (std::size_t i = 0; i < per_slab; ++i) ws.push_back(i);
  } else {
    for (std::size_t j = 0; j < ws_blocks; ++j) {
      const std::size_t s = j * slabs / ws_blocks;
      ws.push_back(s * per_slab + (s * 37) % per_slab);  // a varying block in each slab
    }
  }
  std::shuffle(ws.begin(), ws.end(), std::mt19937_64(42));

  std::size_t k = 0;
  for (auto _ : state) {
    void*& slot = live[ws[k]];
    h->free(slot, size, kAlign);
    void* p = h->alloc(size, kAlign);
    touch(p);
    slot = p;
    if (++k == ws.size()) k = 0;
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["slabs"] = static_cast<double>(headers.size());
  state.counters["working_set"] = static_cast<double>(ws.size());
  for (void* p : live) h->free(p, size, kAlign);
}

void BM_BucketFree_Slabs(benchmark::State& state) {
  const auto slabs = static_cast<std::size_t>(state.range(0));
  run_slabs(state, slabs, slabs);
}
void BM_BucketFree_SlabsWS255(benchmark::State& state) {
  run_slabs(state, static_cast<std::size_t>(state.range(0)), 255);
}

// ---- 4. Producer/consumer: every free is remote --------------------------------------

constexpr std::size_t kPcItems = std::size_t{1} << 20;
constexpr std::size_t kPcSize = 64;

// Bounded single-producer single-consumer ring of pointers.
class SpscRing {
 public:
  static constexpr std::size_t capacity = 1024;

  void reset() noexcept {
    head_.store(0, std::memory_order_relaxed);
    tail_.store(0, std::memory_order_relaxed);
    head_cache_ = 0;
    tail_cache_ = 0;
  }
  void push(void* p) noexcept {  // producer only
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    for (unsigned spins = 0; t - head_cache_ == capacity; ++spins) {
      head_cache_ = head_.load(std::memory_order_acquire);
      backoff(spins);
    }
    slots_[t & (capacity - 1)] = p;
    tail_.store(t + 1, std::memory_order_release);
  }
  void* pop() noexcept {  // consumer only
    const std::size_t h = head_.load(std::memory_order_relaxed);
    for (unsigned spins = 0; h == tail_cache_; ++spins) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      backoff(spins);
    }
    void* p = slots_[h & (capacity - 1)];
    head_.store(h + 1, std::memory_order_release);
    return p;
  }

 private:
  static void backoff(unsigned spins) noexcept {
    if (spins < 64) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();  // two cores, noisy machine: do not burn a quantum
    }
  }
  alignas(64) std::atomic<std::size_t> head_{0};  // written by the consumer
  std::size_t tail_cache_ = 0;                    // consumer's view of tail_
  alignas(64) std::atomic<std::size_t> tail_{0};  // written by the producer
  std::size_t head_cache_ = 0;                    // producer's view of head_
  alignas(64) void* slots_[capacity] = {};
};

template <class A>
void BM_ProducerConsumer(benchmark::State& state) {
  A a{};
  auto ring = std::make_unique<SpscRing>();
  a.free(a.alloc(kPcSize), kPcSize);  // bind this thread (the producer) first
  for (auto _ : state) {
    ring->reset();
    std::thread consumer([&ring, &a] {
      for (std::size_t i = 0; i < kPcItems; ++i) a.free(ring->pop(), kPcSize);
    });
    for (std::size_t i = 0; i < kPcItems; ++i) {
      void* p = a.alloc(kPcSize);
      touch(p);
      ring->push(p);
    }
    consumer.join();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kPcItems));
}

// ---- 5. Epoch enter + leave ---------------------------------------------------------

void BM_Epoch_EnterLeave(benchmark::State& state) {
  ShardHandle& h = shard_handle();
  const std::optional<std::uint64_t> first = h.enter_epoch();  // warm-up: claims this thread's slot
  if (!first.has_value()) {
    state.SkipWithError("no shard manager: enter_epoch gave no epoch");
    return;
  }
  h.leave_epoch(*first);
  for (auto _ : state) {
    std::optional<std::uint64_t> e = h.enter_epoch();
    benchmark::DoNotOptimize(e);
    h.leave_epoch(*e);
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

#define SIZES Arg(16)->Arg(32)->Arg(64)->Arg(128)->Arg(256)

BENCHMARK(BM_Pair<SydraShard>)->Name("BM_Pair_ShardFast")->SIZES;
BENCHMARK(BM_Pair<SydraTimed>)->Name("BM_Pair_BucketTimed")->SIZES;
BENCHMARK(BM_Pair<SydraPlain>)->Name("BM_Pair_BucketPlain")->SIZES;
BENCHMARK(BM_Pair<SydraNoShard>)->Name("BM_Pair_SmallPoolNoShards")->SIZES;
BENCHMARK(BM_Pair<Glibc>)->Name("BM_Pair_Glibc")->SIZES;
BENCHMARK(BM_Pair<Mimalloc>)->Name("BM_Pair_Mimalloc")->SIZES;
BENCHMARK(BM_Pair_IdealInline)->SIZES;
BENCHMARK(BM_Pair_IdealCall)->SIZES;

BENCHMARK(BM_Batch64<SydraShard>)->Name("BM_Batch64_ShardFast")->SIZES;
BENCHMARK(BM_Batch64<SydraTimed>)->Name("BM_Batch64_BucketTimed")->SIZES;
BENCHMARK(BM_Batch64<Glibc>)->Name("BM_Batch64_Glibc")->SIZES;
BENCHMARK(BM_Batch64<Mimalloc>)->Name("BM_Batch64_Mimalloc")->SIZES;
BENCHMARK(BM_Batch64_IdealInline)->SIZES;

BENCHMARK(BM_BucketFree_Slabs)->Arg(1)->Arg(2000);
BENCHMARK(BM_BucketFree_SlabsWS255)->Arg(2000);

// Two busy threads on a two-core machine: the noisiest family, so it always
// takes 9 repetitions (whatever --benchmark_repetitions says) of 2 x 1 Mi items.
BENCHMARK(BM_ProducerConsumer<SydraShard>)
    ->Name("BM_ProducerConsumer_Sydra")
    ->UseRealTime()
    ->Iterations(2)
    ->Repetitions(9)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProducerConsumer<Mimalloc>)
    ->Name("BM_ProducerConsumer_Mimalloc")
    ->UseRealTime()
    ->Iterations(2)
    ->Repetitions(9)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProducerConsumer<Glibc>)
    ->Name("BM_ProducerConsumer_Glibc")
    ->UseRealTime()
    ->Iterations(2)
    ->Repetitions(9)
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_Epoch_EnterLeave);

BENCHMARK_MAIN();
