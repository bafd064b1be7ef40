// What the shape files of bench-alloc share: the run configuration, the
// per-block touch, and one registration function per file, called by
// bench_main.cpp in this order.
//
// Names are "BM_<Family>/<Variant>/<shape arguments>" (Google Benchmark then
// appends /real_time and /threads:N where they apply); tools/bench_report.py
// parses exactly this form, so keep them in step.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>

namespace sydra_bench {

struct BenchConfig {
  bool quick = false;  // BENCH_QUICK=1: fewer items in the fixed-size shapes, for a smoke run
};

// Writes one byte into the block and hides the pointer from the optimizer,
// so that no allocator's work is elided and every block is really touched.
inline void touch(void* p) noexcept {
  static_cast<unsigned char*>(p)[0] = 1;
  benchmark::DoNotOptimize(p);
}

// Skips the benchmark with the adapter's reason when its allocator is absent.
template <class A>
bool require(benchmark::State& state) {
  std::string why;
  if (A::available(&why)) return true;
  state.SkipWithError(why.c_str());
  return false;
}

void register_pair_shapes(const BenchConfig& cfg);    // bench_pairs.cpp: pairs, batches
void register_churn_shapes(const BenchConfig& cfg);   // bench_churn.cpp: larson-like churn
void register_remote_shapes(const BenchConfig& cfg);  // bench_remote.cpp: producer/consumer, retire
void register_sydra_shapes(const BenchConfig& cfg);   // bench_sydra.cpp: bucket slabs, epochs
void register_container_shapes(const BenchConfig& cfg);  // bench_containers.cpp: std containers on each adapter

}  // namespace sydra_bench
