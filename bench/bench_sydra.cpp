// Shapes of sydra's own paths that the peers have no counterpart for.
//
//   BM_BucketFree_Slabs/1, /2000       bucket free + re-alloc (256 B) with 1 or 2000 slabs live
//   BM_BucketFree_SlabsWS255/2000      control: 2000 slabs live, a working set as small as /1's
//   BM_BucketFree_SlabsHuge/2000       /2000 with SlabPoolOptions::huge_pages (chunks on 2 MiB pages)
//   BM_Epoch_EnterLeave                enter_epoch() + leave_epoch() on the 4-shard handle
//
// One item = one free+alloc pair, or one enter+leave pair; CPU time.
#include "shapes.hpp"
#include "sydra_adapters.hpp"

#include <algorithm>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

namespace sydra_bench {
namespace {

constexpr std::size_t kAlign = 8;

// 256-byte class. A fresh bucket-only handle per run, so that the slabs are
// exactly the ones filled here: blocks are allocated until a block lands in
// slab number `slabs + 1` (that one is given back), and every slab must then
// hold the same number of blocks, i.e. be full. All of them stay live; the
// timed loop frees one block and allocates one (LIFO: the same block comes
// back), walking a shuffled working set of `ws_blocks` blocks, each in a
// different slab (spread evenly over all of them), except in the one-slab
// case, where it is every block of the slab. With 2000 slabs every free
// therefore reaches another slab; the WS255 control keeps 2000 slabs live but
// walks only 255 of them, so that only the number of live slabs differs from /1.
void run_slabs(benchmark::State& state, std::size_t slabs, std::size_t ws_blocks, bool huge_pages = false) {
  constexpr std::size_t size = 256;
  constexpr std::size_t max_per_slab = 64 * 1024 / size;
  auto handle = make_bucket_only_handle(huge_pages);
  BucketOnly a{*handle};
  std::vector<void*> live;
  std::vector<std::vector<std::size_t>> by_slab;  // indices into live, per slab in order of first use
  std::unordered_map<const void*, std::size_t> slab_index;
  const char* error = nullptr;
  while (error == nullptr) {
    void* p = a.alloc(size, kAlign);
    const void* s = p != nullptr ? slab_of(p) : nullptr;
    if (s == nullptr) {
      error = "a 256-B block did not come from a slab";
      if (p != nullptr) a.free(p, size, kAlign);
      break;
    }
    auto [it, fresh] = slab_index.try_emplace(s, by_slab.size());
    if (fresh) {
      if (by_slab.size() == slabs) {  // the first block of one slab too many
        a.free(p, size, kAlign);
        break;
      }
      by_slab.emplace_back();
    }
    by_slab[it->second].push_back(live.size());
    live.push_back(p);
    if (live.size() > slabs * max_per_slab) error = "more blocks than the slabs can hold";
  }
  const std::size_t per_slab = by_slab.empty() ? 0 : by_slab.front().size();
  for (const auto& blocks : by_slab)
    if (blocks.size() != per_slab) error = "the live blocks do not fill the slabs evenly";
  if (error != nullptr) {
    state.SkipWithError(error);
    for (void* p : live) a.free(p, size, kAlign);
    return;
  }

  std::vector<std::size_t> ws;
  if (slabs == 1) {
    ws = by_slab.front();
  } else {
    for (std::size_t j = 0; j < ws_blocks; ++j) {
      const std::size_t s = j * slabs / ws_blocks;
      ws.push_back(by_slab[s][(s * 37) % per_slab]);  // a varying block in each slab
    }
  }
  std::shuffle(ws.begin(), ws.end(), std::mt19937_64(42));

  std::size_t k = 0;
  for (auto _ : state) {
    void*& slot = live[ws[k]];
    a.free(slot, size, kAlign);
    void* p = a.alloc(size, kAlign);
    touch(p);
    slot = p;
    if (++k == ws.size()) k = 0;
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["slabs"] = static_cast<double>(by_slab.size());
  state.counters["blocks_per_slab"] = static_cast<double>(per_slab);
  state.counters["working_set"] = static_cast<double>(ws.size());
  for (void* p : live) a.free(p, size, kAlign);
}

void run_epoch_enter_leave(benchmark::State& state) {
  SydraHandle& h = shard_handle();
  const std::optional<std::uint64_t> first = sydra_enter_epoch(h);  // warm-up: claims this thread's slot
  if (!first.has_value()) {
    state.SkipWithError("no shard manager: enter_epoch gave no epoch");
    return;
  }
  sydra_leave_epoch(h, *first);
  for (auto _ : state) {
    std::optional<std::uint64_t> e = sydra_enter_epoch(h);
    benchmark::DoNotOptimize(e);
    sydra_leave_epoch(h, *e);
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

void register_sydra_shapes(const BenchConfig&) {
  benchmark::RegisterBenchmark("BM_BucketFree_Slabs/1", [](benchmark::State& s) { run_slabs(s, 1, 1); });
  benchmark::RegisterBenchmark("BM_BucketFree_Slabs/2000", [](benchmark::State& s) { run_slabs(s, 2000, 2000); });
  benchmark::RegisterBenchmark("BM_BucketFree_SlabsWS255/2000",
                               [](benchmark::State& s) { run_slabs(s, 2000, 255); });
  benchmark::RegisterBenchmark("BM_BucketFree_SlabsHuge/2000",
                               [](benchmark::State& s) { run_slabs(s, 2000, 2000, true); });
  benchmark::RegisterBenchmark("BM_Epoch_EnterLeave", run_epoch_enter_leave);
}

}  // namespace sydra_bench
