// Shapes where blocks cross threads on purpose.
//
//   BM_ProducerConsumer/<Variant>/64/...     one thread allocates 64-B blocks, another frees them
//   BM_Retire/Sydra/64/.../threads:<w>       w writers publish and retire 64-B nodes, 2 readers pinned
//
// Producer/consumer: one item = one block through the ring, per wall-clock
// second. Retire: one item = one node allocated, published, retired and
// (eventually) reclaimed, per CPU second of the writers (the readers' CPU is
// not counted; they only keep the epoch pinned and compete for the cores).
#include "peers.hpp"
#include "shapes.hpp"
#include "sydra_adapters.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sydra_bench {
namespace {

// ---- Producer/consumer -----------------------------------------------------------

constexpr std::size_t kPcSize = 64;
constexpr std::size_t kPcAlign = 8;

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
void run_producer_consumer(benchmark::State& state, std::size_t items) {
  if (!require<A>(state)) return;
  A a{};
  auto ring = std::make_unique<SpscRing>();
  a.free(a.alloc(kPcSize, kPcAlign), kPcSize, kPcAlign);  // bind this thread (the producer) first
  for (auto _ : state) {
    ring->reset();
    std::thread consumer([&ring, &a, items] {
      for (std::size_t i = 0; i < items; ++i) a.free(ring->pop(), kPcSize, kPcAlign);
    });
    for (std::size_t i = 0; i < items; ++i) {
      void* p = a.alloc(kPcSize, kPcAlign);
      touch(p);
      ring->push(p);
    }
    consumer.join();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(items));
}

template <class A>
void add_producer_consumer(const char* variant, const BenchConfig& cfg) {
  const std::size_t items = cfg.quick ? std::size_t{1} << 16 : std::size_t{1} << 20;
  const std::string name = "BM_ProducerConsumer/" + std::string(variant) + "/" + std::to_string(kPcSize);
  // Two busy threads on a two-core machine: the noisiest shape, so it always
  // takes 9 repetitions (whatever --benchmark_repetitions says) of 2 x 1 Mi items.
  benchmark::RegisterBenchmark(name.c_str(),
                               [items](benchmark::State& state) { run_producer_consumer<A>(state, items); })
      ->UseRealTime()
      ->Iterations(2)
      ->Repetitions(cfg.quick ? 3 : 9)
      ->Unit(benchmark::kMillisecond);
}

// ---- Retire and collect while readers are pinned -----------------------------------

constexpr std::size_t kNodeSize = 64;
constexpr std::size_t kNodeAlign = 8;
constexpr std::size_t kCollectEvery = 64;
constexpr int kReaders = 2;
constexpr std::uint64_t kCookie = 0x5EED'C0FF'EE00'D1CEull;

// A 64-B node whose two words must always agree: a reader that finds them
// disagreeing has read a node that was reclaimed and reused under its pin.
struct RetireNode {
  std::atomic<std::uint64_t> seq;
  std::atomic<std::uint64_t> check;
  unsigned char pad[kNodeSize - 2 * sizeof(std::uint64_t)];
};
static_assert(sizeof(RetireNode) == kNodeSize);

struct RetireShared {
  std::atomic<RetireNode*> slot{nullptr};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> bad_reads{0};
  std::vector<std::thread> readers;
};

RetireNode* make_node(Sydra& a, std::uint64_t seq) noexcept {
  void* mem = a.alloc(kNodeSize, kNodeAlign);
  if (mem == nullptr) std::abort();
  auto* n = ::new (mem) RetireNode;
  n->seq.store(seq, std::memory_order_relaxed);
  n->check.store(seq ^ kCookie, std::memory_order_relaxed);
  return n;
}

void reader_loop(SydraHandle& h, RetireShared& s) {
  std::uint64_t reads = 0, bad = 0;
  while (!s.stop.load(std::memory_order_relaxed)) {
    const std::optional<std::uint64_t> e = sydra_enter_epoch(h);
    if (!e) break;
    if (RetireNode* n = s.slot.load(std::memory_order_acquire)) {
      const std::uint64_t seq = n->seq.load(std::memory_order_relaxed);
      if ((seq ^ n->check.load(std::memory_order_relaxed)) != kCookie) ++bad;
    }
    sydra_leave_epoch(h, *e);
    ++reads;
  }
  s.reads.fetch_add(reads, std::memory_order_relaxed);
  s.bad_reads.fetch_add(bad, std::memory_order_relaxed);
}

void run_retire(benchmark::State& state) {
  Sydra a{};
  SydraHandle& h = a.h;
  static RetireShared shared;
  if (state.thread_index() == 0) {
    // The writers wait at the loop's start barrier until the readers run.
    shared.stop.store(false);
    shared.reads.store(0);
    shared.bad_reads.store(0);
    shared.slot.store(make_node(a, 0));
    for (int i = 0; i < kReaders; ++i) shared.readers.emplace_back(reader_loop, std::ref(h), std::ref(shared));
  }
  std::uint64_t seq = static_cast<std::uint64_t>(state.thread_index()) << 48;
  std::size_t retired = 0;
  bool refused = false;
  for (auto _ : state) {
    RetireNode* old = shared.slot.exchange(make_node(a, ++seq), std::memory_order_acq_rel);
    if (!sydra_retire(h, old, kNodeSize, kNodeAlign)) refused = true;
    if (++retired % kCollectEvery == 0) sydra_collect(h);
  }
  state.SetItemsProcessed(state.iterations());
  if (refused) state.SkipWithError("retire() refused a node (no memory for its record)");
  if (state.thread_index() == 0) {
    shared.stop.store(true);
    for (std::thread& t : shared.readers) t.join();
    shared.readers.clear();
    RetireNode* last = shared.slot.exchange(nullptr);
    a.free(last, kNodeSize, kNodeAlign);
    // Nobody is pinned now: two rounds reclaim every retired node and the
    // remote frees those reclaims made.
    sydra_collect(h);
    sydra_collect(h);
    state.counters["reader_pins"] = static_cast<double>(shared.reads.load());
    state.counters["bad_reads"] = static_cast<double>(shared.bad_reads.load());
    if (shared.bad_reads.load() != 0) state.SkipWithError("a reader saw a reclaimed node under its pin");
  }
}

}  // namespace

void register_remote_shapes(const BenchConfig& cfg) {
  add_producer_consumer<Sydra>("Sydra", cfg);
  add_producer_consumer<SydraErased>("SydraErased", cfg);
  add_producer_consumer<Glibc>("Glibc", cfg);
  add_producer_consumer<Mimalloc>("Mimalloc", cfg);
  add_producer_consumer<Jemalloc>("Jemalloc", cfg);
#if SYDRA_BENCH_SNMALLOC
  add_producer_consumer<Snmalloc>("Snmalloc", cfg);
#endif

  const std::string name = "BM_Retire/Sydra/" + std::to_string(kNodeSize);
  benchmark::RegisterBenchmark(name.c_str(), run_retire)->Threads(1)->Threads(2);
}

}  // namespace sydra_bench
