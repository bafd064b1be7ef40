// The larson-like churn (churn.hpp) under Google Benchmark.
//
//   BM_Churn/<Variant>/<lo>-<hi>[:log]/real_time/threads:<n>
//
// 16-256 B on 1, 2, 8 and 64 threads; 8-1024 B on 1 and 2 threads, sizes
// uniform over the bytes; 16-32768:log on 1 and 2 threads, sizes log-uniform
// (every octave equally likely: the whole pooled range up to 32 KiB without
// the large sizes drowning the small ones; issue 17). 4096 slots
// per thread, all shared; thread 0 fills them before the timed loop and
// frees what is left after it, so every run starts at the same live set and
// leaves nothing behind. One item = one churn operation (alloc + exchange +
// free of the displaced block), counted over all threads, per wall-clock
// second (UseRealTime): the throughput of the whole process.
//
// For sydra the 4-shard handle serves every thread count, so from the fifth
// thread on (the 8- and 64-thread shapes) threads have no shard and take the
// bucket path, which is what those shapes are for.
#include "churn.hpp"
#include "peers.hpp"
#include "shapes.hpp"
#include "sydra_adapters.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace sydra_bench {
namespace {

constexpr std::size_t kSlotsPerThread = 4096;
constexpr std::size_t kOpsPerIteration = 256;
constexpr std::size_t kAlign = 8;

template <class A>
struct ChurnShared {
  A a{};
  std::unique_ptr<Churn<A, kAlign>> churn;
};

template <class A>
void run_churn(benchmark::State& state, SizeRange range) {
  // Availability is the same for every thread, so either all skip (and none
  // waits at the start barrier) or none does.
  if (!require<A>(state)) return;
  static ChurnShared<A> shared;
  if (state.thread_index() == 0) {
    // The others wait at the loop's start barrier until this is done.
    shared.churn = std::make_unique<Churn<A, kAlign>>(shared.a, kSlotsPerThread * state.threads(), range);
    Xorshift64 fill_rng(0xF111);
    shared.churn->fill(fill_rng);
  }
  Xorshift64 rng(static_cast<std::uint64_t>(state.thread_index()) + 1);
  for (auto _ : state) shared.churn->run(rng, kOpsPerIteration);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kOpsPerIteration));
  // Every thread has passed the loop's stop barrier: nobody touches the slots now.
  if (state.thread_index() == 0) shared.churn.reset();
}

template <class A>
void add_churn(const char* variant, SizeRange r, int threads) {
  const std::string name =
      "BM_Churn/" + std::string(variant) + "/" + std::to_string(r.lo) + "-" + std::to_string(r.hi) +
      (r.log_uniform ? ":log" : "");
  benchmark::RegisterBenchmark(name.c_str(), [r](benchmark::State& state) { run_churn<A>(state, r); })
      ->Threads(threads)
      ->UseRealTime();
}

}  // namespace

void register_churn_shapes(const BenchConfig&) {
  struct Shape {
    SizeRange range;
    int threads;
    bool erased;  // also through the type-erased Allocator
  };
  constexpr Shape shapes[] = {
      {{16, 256}, 1, true}, {{16, 256}, 2, true}, {{8, 1024}, 1, true},
      {{8, 1024}, 2, true}, {{16, 256}, 8, false}, {{16, 256}, 64, false},
      {{16, 32768, true}, 1, true}, {{16, 32768, true}, 2, true},
  };
  for (const Shape& s : shapes) {
    add_churn<Sydra>("Sydra", s.range, s.threads);
    add_churn<SydraProfiled>("SydraProfiled", s.range, s.threads);
    if (s.erased) add_churn<SydraErased>("SydraErased", s.range, s.threads);
    add_churn<Glibc>("Glibc", s.range, s.threads);
    add_churn<Mimalloc>("Mimalloc", s.range, s.threads);
    add_churn<Jemalloc>("Jemalloc", s.range, s.threads);
#if SYDRA_BENCH_SNMALLOC
    add_churn<Snmalloc>("Snmalloc", s.range, s.threads);
#endif
  }
}

}  // namespace sydra_bench
