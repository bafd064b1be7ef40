// Pairs and batches: the single-thread fast path of every allocator.
//
//   BM_Pair/<Variant>/<size>/align:<a>       one alloc+free pair
//   BM_Batch64/<Variant>/<size>/align:<a>    64 allocs then 64 frees (LIFO), per pair
//
// Sizes 16, 64 and 256 B at alignment 8 and 16. SydraErased runs at 16 only
// (the Allocator's default alignment); IdealCall at 8 only (the list does not
// care about alignment). One item = one alloc+free pair; CPU time.
#include "peers.hpp"
#include "shapes.hpp"
#include "sydra_adapters.hpp"

#include <cstdint>
#include <string>

namespace sydra_bench {
namespace {

constexpr std::size_t kSizes[] = {16, 64, 256};
constexpr std::size_t kBatch = 64;

template <std::size_t Align, class A>
void run_pair(benchmark::State& state, A a, std::size_t n) {
  a.free(a.alloc(n, Align), n, Align);  // warm-up outside the timing: first bind, first slab
  for (auto _ : state) {
    void* p = a.alloc(n, Align);
    touch(p);
    a.free(p, n, Align);
    // The next pop must really load the list head: without this the compiler
    // forwards the pushed pointer into the next iteration (the ideal loop then
    // does no pop at all; seen in the disassembly).
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

template <std::size_t Align, class A>
void run_batch(benchmark::State& state, A a, std::size_t n) {
  void* ptrs[kBatch];
  for (std::size_t i = 0; i < kBatch; ++i) ptrs[i] = a.alloc(n, Align);  // warm-up
  for (std::size_t i = kBatch; i-- > 0;) a.free(ptrs[i], n, Align);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      ptrs[i] = a.alloc(n, Align);
      touch(ptrs[i]);
    }
    for (std::size_t i = kBatch; i-- > 0;) a.free(ptrs[i], n, Align);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kBatch));
}

template <class A, std::size_t Align>
void add_pair(const char* variant, std::size_t n) {
  const std::string name = "BM_Pair/" + std::string(variant) + "/" + std::to_string(n) + "/align:" +
                           std::to_string(Align);
  benchmark::RegisterBenchmark(name.c_str(), [n](benchmark::State& state) {
    if (require<A>(state)) run_pair<Align>(state, A{}, n);
  });
}

template <class A, std::size_t Align>
void add_batch(const char* variant, std::size_t n) {
  const std::string name = "BM_Batch64/" + std::string(variant) + "/" + std::to_string(n) + "/align:" +
                           std::to_string(Align);
  benchmark::RegisterBenchmark(name.c_str(), [n](benchmark::State& state) {
    if (require<A>(state)) run_batch<Align>(state, A{}, n);
  });
}

template <std::size_t Align>
void add_ideal(std::size_t n) {
  const std::string suffix = "/" + std::to_string(n) + "/align:" + std::to_string(Align);
  benchmark::RegisterBenchmark(("BM_Pair/IdealInline" + suffix).c_str(), [n](benchmark::State& state) {
    IdealList l(n, 8);
    run_pair<Align>(state, IdealInline{l}, n);
  });
  benchmark::RegisterBenchmark(("BM_Batch64/IdealInline" + suffix).c_str(), [n](benchmark::State& state) {
    IdealList l(n, kBatch + 8);
    run_batch<Align>(state, IdealInline{l}, n);
  });
  if constexpr (Align == 8) {
    benchmark::RegisterBenchmark(("BM_Pair/IdealCall" + suffix).c_str(), [n](benchmark::State& state) {
      IdealList l(n, 8);
      run_pair<Align>(state, IdealCall{l}, n);
    });
  }
}

template <std::size_t Align>
void add_aligned(std::size_t n) {
  add_pair<Sydra, Align>("Sydra", n);
  add_pair<SydraNoShard, Align>("SydraNoShard", n);
  add_pair<SydraLean, Align>("SydraLean", n);
  add_pair<SydraHardened, Align>("SydraHardened", n);
  add_pair<SydraProfiled, Align>("SydraProfiled", n);
  add_pair<Glibc, Align>("Glibc", n);
  add_pair<Mimalloc, Align>("Mimalloc", n);
  add_pair<Jemalloc, Align>("Jemalloc", n);
#if SYDRA_BENCH_SNMALLOC
  add_pair<Snmalloc, Align>("Snmalloc", n);
#endif
  add_batch<Sydra, Align>("Sydra", n);
  add_batch<SydraLean, Align>("SydraLean", n);
  add_batch<SydraHardened, Align>("SydraHardened", n);
  add_batch<SydraProfiled, Align>("SydraProfiled", n);
  add_batch<Glibc, Align>("Glibc", n);
  add_batch<Mimalloc, Align>("Mimalloc", n);
  add_batch<Jemalloc, Align>("Jemalloc", n);
#if SYDRA_BENCH_SNMALLOC
  add_batch<Snmalloc, Align>("Snmalloc", n);
#endif
  if constexpr (Align == SydraErased::default_align) {
    add_pair<SydraErased, Align>("SydraErased", n);
    add_batch<SydraErased, Align>("SydraErased", n);
  }
  add_ideal<Align>(n);
}

}  // namespace

void register_pair_shapes(const BenchConfig&) {
  for (std::size_t n : kSizes) {
    add_aligned<8>(n);
    add_aligned<16>(n);
  }
}

}  // namespace sydra_bench
