// bench-alloc: every throughput shape of sydra-alloc next to glibc, mimalloc,
// jemalloc (and snmalloc when built with -Dsnmalloc_src) and the ideal free
// list, in one process, so that one run (with interleaved repetitions)
// compares them on the same machine state. See
// bench/README.md for the method; tools/bench.sh runs it and
// tools/bench_report.py turns its JSON into docs/benchmarks.md.
//
// Environment: BENCH_QUICK=1 shrinks the fixed-size shapes (producer/consumer)
// for a smoke run; --benchmark_* flags work as usual.
#include "peers.hpp"
#include "shapes.hpp"
#include "sydra_adapters.hpp"

#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  using namespace sydra_bench;
  // First, before any allocator is loaded: jemalloc needs the static TLS
  // surplus that only a tunable set at process start provides.
  reexec_for_static_tls(argv);
  check_process_malloc("bench-alloc");

  BenchConfig cfg;
  const char* quick = std::getenv("BENCH_QUICK");
  cfg.quick = quick != nullptr && std::strcmp(quick, "0") != 0 && *quick != '\0';

  register_pair_shapes(cfg);
  register_churn_shapes(cfg);
  register_remote_shapes(cfg);
  register_sydra_shapes(cfg);
  register_container_shapes(cfg);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // What was measured, recorded in the JSON's context for the report.
  const MimallocApi& mi = MimallocApi::get();
  const JemallocApi& je = JemallocApi::get();
  benchmark::AddCustomContext("sydra", sydra_description());
  benchmark::AddCustomContext("process_malloc", malloc_provider());
  benchmark::AddCustomContext("mimalloc", mi.ok() ? mi.path : "unavailable: " + mi.error);
  benchmark::AddCustomContext("jemalloc", je.ok() ? je.path : "unavailable: " + je.error);
  benchmark::AddCustomContext("snmalloc", snmalloc_description());
  benchmark::AddCustomContext("bench_quick", cfg.quick ? "1" : "0");

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
