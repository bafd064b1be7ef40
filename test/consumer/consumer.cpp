// Engine-side code: templates over the handle, the type-erased Allocator,
// the STL adapter, and the stats where the mode has them.
#include <sydra/alloc.hpp>
#include <sydra/alloc/format.hpp>
#include <sydra/alloc/stl.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace sa = sydra::alloc;

// Whether the handle keeps stats. A handle that declares has_stats says so
// itself (its snapshot_stats() may exist and refuse to compile without a
// stats layer); otherwise the member's presence is the answer.
template <class Handle>
constexpr bool keeps_stats() {
  if constexpr (requires { Handle::has_stats; }) return Handle::has_stats;
  else return requires(Handle& h) { h.snapshot_stats(); };
}

template <class Handle>
int use(Handle& h, const std::string& expected) {
  std::vector<int, sa::StlAllocator<int>> v{sa::StlAllocator<int>(h.allocator())};
  for (int i = 0; i < 1000; ++i) v.push_back(i);
  if (v[999] != 999) return 1;
  if constexpr (keeps_stats<Handle>()) {
    const std::string json = sa::to_json(h.snapshot_stats());
    if (json.find("\"mode\":\"" + expected + "\"") == std::string::npos) return 2;
  }
  return sa::mode == expected ? 0 : 3;
}

// ---------------------------------------------------------------------------
// Two policies of the engine's own, side by side in one program and one
// thread, with different opt-ins: an index pool with 8 shards, epochs, stats
// and its own small classes; a buffer pool with no shards, no stats, no lock
// timing and classes up to 4 KiB. What one does not choose costs it nothing
// (compared by sizeof), and neither sees the other's blocks.
struct IndexPolicy {
  static constexpr const char* name = "engine-index";
  using Classes = sa::SizeClassList<16, 24, 32, 48, 64, 96, 128>;
  using Shards = sa::ThreadShards<sa::ShardFeatures{.count = 8, .epochs = true, .stats = true}>;
  using Buckets = sa::MutexBuckets<sa::TimedLock<>, sa::BucketFeatures{.stats = true}>;
  using Fallback = sa::Tracked<sa::SystemHeap>;
};
struct BufferPolicy {
  static constexpr const char* name = "engine-buffers";
  static constexpr sa::SizeClassSpec classes{.min = 64, .steps_per_doubling = 2, .max = 4096};
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<sa::PlainLock<>, sa::BucketFeatures{.stats = false}>;
  using Fallback = sa::SystemHeap;
};
using IndexHandle = sa::BasicAllocatorHandle<IndexPolicy>;
using BufferHandle = sa::BasicAllocatorHandle<BufferPolicy>;
static_assert(IndexHandle::has_stats && IndexHandle::has_epochs);
static_assert(!BufferHandle::has_stats && !BufferHandle::has_epochs);
static_assert(IndexPolicy::Shards::features.count == 8);
// Opted out of stats and lock timing: the buffer pool's bucket layer is
// smaller than the same layer with both.
using TimedStatsBuckets = sa::MutexBuckets<sa::TimedLock<>, sa::BucketFeatures{.stats = true}>::Layer<BufferHandle::Ctx>;
static_assert(sizeof(BufferHandle::Buckets) < sizeof(TimedStatsBuckets));

int compose_two_policies() {
  IndexHandle index;
  BufferHandle buffers;
  void* node = index.alloc(40, 8);
  void* page = buffers.alloc(3000, 16);
  if (node == nullptr || page == nullptr) return 1;
  if (sa::Pagemap::lookup(node) == nullptr || sa::Pagemap::lookup(page) == nullptr) return 2;  // both pooled
  if (sa::Pagemap::lookup(node)->handle == sa::Pagemap::lookup(page)->handle) return 3;
  {
    auto pin = index.pin();
    if (!pin) return 4;
    if (!index.retire(node, 40, 8)) return 5;
  }
  index.collect_garbage();
  buffers.free(page, 3000, 16);
  const sa::Stats s = index.snapshot_stats();
  if (s.classes.size() != 7 || s.classes.back() != 128) return 6;  // its own table
  if (s.shards.shard_count != 8 || s.shards.retired != 1 || s.shards.retired_pending != 0) return 7;
  // The run-time override of the shard count (documented in the README).
  IndexHandle fewer(IndexHandle::Options{.pool = {.shards = 2}});
  if (fewer.snapshot_stats().shards.shard_count != 2) return 8;
  return index.leaks() == sa::LeakReport{} ? 0 : 9;
}
// ---------------------------------------------------------------------------

int main(int argc, char** argv) {
  const std::string expected = argc > 1 ? argv[1] : "small_pool";
  sa::AllocatorHandle h;
  int rc = use(h, expected);
  if (rc == 0 && compose_two_policies() != 0) rc = 4;
  std::printf("consumer: mode %s, expected %s, rc %d\n", std::string(sa::mode).c_str(), expected.c_str(), rc);
  return rc;
}
