// Prints to_json(snapshot_stats()) of real handles after a mixed workload,
// one JSON document per line, for test/schema/validate.py to check against
// docs/stats.schema.json. Three handles, every kind of stats a handle has:
//
//   small_pool, 2 shards   a shard owner (main), a second owner (B), a thread
//                          that finds no shard free (C, the bucket path),
//                          fallback requests (large, over-aligned, resized,
//                          remapped), cross-thread frees in batches, blocks
//                          retired under a pin, snapshots while a thread
//                          works, then collect_garbage() and trim(0)
//   small_pool, 0 shards   has_shards false: the shard object stays zero
//   buckets-only           NoShards + MutexBuckets<> + Tracked<Checked<SystemHeap>>:
//                          stats without shards or epochs
//
// The default and mimalloc modes keep no Stats (snapshot_stats() does not
// compile there), so they have nothing to print.
//
// Besides printing, the program checks that the workload reached what it
// meant to (a retired block pending under the pin, a remote batch in
// transit, a miss, a decommit), and that once every thread is quiet the
// counts are exact; it exits 1 with a message on stderr if not.
#include <sydra/alloc.hpp>
#include <sydra/alloc/format.hpp>

#include <atomic>
#include <cstdio>
#include <latch>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

using Pool = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

struct BucketsOnlyPolicy {
  static constexpr const char* name = "buckets-only";
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::Tracked<sa::Checked<sa::SystemHeap>>;
};
using BucketsOnly = sa::BasicAllocatorHandle<BucketsOnlyPolicy>;

struct Block {
  void* p;
  std::size_t len;
  std::size_t align;
};

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "stats-json: %s\n", what);
    ++failures;
  }
}

void emit(const sa::Stats& s) {
  std::puts(sa::to_json(s).c_str());
  std::fflush(stdout);
}

template <class H>
Block take(H& h, std::size_t len, std::size_t align = 8) {
  void* p = h.alloc(len, align);
  if (p == nullptr) {
    std::fprintf(stderr, "stats-json: out of memory\n");
    std::exit(2);
  }
  return {p, len, align};
}

template <class H>
void give(H& h, const Block& b) {
  h.free(b.p, b.len, b.align);
}

std::uint64_t shard_in_use(const sa::Stats& s) {
  std::uint64_t n = 0;
  for (const auto& sh : s.shards.shards)
    for (const auto& c : sh.classes) n += c.in_use;
  return n;
}
std::uint64_t bucket_in_use(const sa::Stats& s) {
  std::uint64_t n = 0;
  for (const auto& b : s.buckets) n += b.in_use;
  return n;
}

void small_pool_with_shards() {
  Pool h(Pool::Options{.pool = {.shards = 2}});

  // The main thread owns a shard: every class, a few blocks each.
  std::vector<Block> pooled;
  for (std::size_t len : {8u, 16u, 24u, 32u, 48u, 64u, 96u, 128u, 192u, 256u, 1000u, 4096u, 40000u, 65536u})
    for (int i = 0; i < 40; ++i) pooled.push_back(take(h, len));
  // The fallback: too big (above 64 KiB), over-aligned, resized in place, remapped.
  std::vector<Block> large;
  for (std::size_t len : {70000u, 80000u, 100000u, 150000u, 200000u, 300000u, 500000u}) large.push_back(take(h, len));
  large.push_back(take(h, 100, 64));  // small but over-aligned: not pooled
  expect(h.resize(large[2].p, 100000, 8, 99000), "a fallback block shrinks in place");
  large[2].len = 99000;
  void* moved = h.remap(large[4].p, 200000, 8, 400000);
  expect(moved != nullptr, "a fallback block remaps");
  large[4] = {moved, 400000, 8};

  auto pin = h.enter_epoch();
  expect(pin.has_value(), "the main thread pins");

  std::latch b_ready(1), c_ready(1), go(1);
  std::vector<Block> b_live, c_live;
  // B: the second shard's owner. It retires blocks while main is pinned
  // (they stay pending), then frees main's 32-byte blocks: remote frees,
  // batched, the last batch still held (in transit) when the snapshot runs.
  std::thread b([&] {
    for (int i = 0; i < 200; ++i) b_live.push_back(take(h, 48));
    for (int i = 0; i < 100; ++i) {
      const Block x = b_live.back();
      b_live.pop_back();
      expect(h.retire(x.p, x.len, x.align), "retire");
    }
    h.collect_garbage();  // seals B's bag; main's pin holds it back
    std::vector<Block> keep;
    for (const Block& x : pooled) {
      if (x.len == 32) give(h, x);  // 40 remote frees: one batch of 32 published, 8 in transit
      else keep.push_back(x);
    }
    pooled.swap(keep);
    b_ready.count_down();
    go.wait();
  });
  b_ready.wait();
  // C: no shard is free (main and B hold both), so the bucket path serves
  // it; it also frees main's 64-byte blocks (a shardless remote free is
  // published at once) and half of its own.
  std::thread c([&] {
    for (int i = 0; i < 300; ++i) c_live.push_back(take(h, 64));
    for (int i = 0; i < 150; ++i) {
      give(h, c_live.back());
      c_live.pop_back();
    }
    std::vector<Block> keep;
    for (const Block& x : pooled) {
      if (x.len == 64) give(h, x);
      else keep.push_back(x);
    }
    pooled.swap(keep);
    c_ready.count_down();
    go.wait();
  });
  c_ready.wait();

  const sa::Stats busy = h.snapshot_stats();
  emit(busy);
  expect(busy.has_shards && busy.has_buckets && busy.has_fallback && busy.has_memory, "small_pool has every part");
  expect(busy.shards.alloc_hits > 0, "the shards served");
  expect(busy.shards.alloc_misses > 0, "a thread without a shard used the buckets");
  expect(busy.fallback.allocs > 0 && busy.fallback.resizes > 0 && busy.fallback.remaps > 0, "the fallback served");
  expect(busy.shards.retired == 100, "100 blocks retired");
  expect(busy.shards.retired_pending == 100, "the pin holds every retired block");
  expect(busy.shards.pinned_threads == 1 && busy.shards.min_pinned_epoch != 0, "one reader pinned");
  expect(busy.shards.in_transit > 0, "a remote batch in transit");
  expect(busy.shards.deferred_total > 0 && busy.shards.backlog > 0, "remote frees wait to be reclaimed");

  // Snapshots while a thread allocates and frees (B's and C's numbers are
  // still held): the validator's rules must hold for these too.
  std::atomic<bool> stop{false};
  std::thread w([&] {
    std::vector<Block> mine;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 64; ++i) mine.push_back(take(h, 16 + 8 * (i % 8)));
      mine.push_back(take(h, 4000));
      for (const Block& x : mine) give(h, x);
      mine.clear();
    }
  });
  for (int i = 0; i < 4; ++i) emit(h.snapshot_stats());
  stop = true;
  w.join();

  go.count_down();
  b.join();  // publishes B's last batch, seals its bag
  h.leave_epoch(*pin);
  for (const Block& x : b_live) give(h, x);
  for (const Block& x : c_live) give(h, x);
  c.join();
  h.collect_garbage();  // nobody pinned: the retired blocks and every remote free are reclaimed

  // Keep a known set live, give the rest back, and trim to nothing.
  std::vector<Block> keep_pooled(pooled.begin(), pooled.begin() + 10), keep_large(large.begin(), large.begin() + 2);
  for (std::size_t i = 10; i < pooled.size(); ++i) give(h, pooled[i]);
  for (std::size_t i = 2; i < large.size(); ++i) give(h, large[i]);
  h.trim(0);

  const sa::Stats quiet = h.snapshot_stats();
  emit(quiet);
  expect(quiet.shards.in_transit == 0, "quiet: nothing in transit");
  expect(quiet.shards.retired_pending == 0, "quiet: every retired block reclaimed");
  expect(quiet.shards.backlog == 0, "quiet: no backlog after collect_garbage()");
  expect(quiet.shards.pinned_threads == 0 && quiet.shards.min_pinned_epoch == 0, "quiet: nobody pinned");
  expect(shard_in_use(quiet) == keep_pooled.size(), "quiet: shard in_use is exactly the blocks held");
  expect(bucket_in_use(quiet) == 0, "quiet: bucket in_use is zero");
  expect(quiet.fallback.blocks_live == keep_large.size(), "quiet: fallback blocks_live exact");
  expect(quiet.fallback.bytes_live == keep_large[0].len + keep_large[1].len, "quiet: fallback bytes_live exact");
  expect(quiet.memory.decommits > 0 && quiet.memory.retained_bytes == 0, "trim(0) decommitted every empty slab");
  std::uint64_t owned_bytes = 0;  // quiet: the pool's slabs in use are the shards' and the buckets'
  for (const auto& sh : quiet.shards.shards) owned_bytes += sh.reserved_bytes;
  for (const auto& bk : quiet.buckets) owned_bytes += bk.slabs * sa::slab_bytes;
  expect(owned_bytes == quiet.memory.in_use_bytes, "quiet: shard and bucket slabs add up to memory.in_use_bytes");
  const sa::LeakReport l = h.leaks();
  expect(l.blocks == keep_pooled.size() + keep_large.size() && !l.underflow, "the leak report is exact");

  for (const Block& x : keep_pooled) give(h, x);
  for (const Block& x : keep_large) give(h, x);
  expect(h.leaks() == sa::LeakReport{}, "nothing live at the end");
}

void small_pool_without_shards() {
  Pool h(Pool::Options{.pool = {.shards = 0}});
  std::vector<Block> live;
  for (int i = 0; i < 50; ++i) live.push_back(take(h, 24));
  live.push_back(take(h, 70000));
  std::thread([&] {
    for (int i = 0; i < 25; ++i) give(h, live[static_cast<std::size_t>(i)]);
  }).join();
  const sa::Stats s = h.snapshot_stats();
  emit(s);
  expect(!s.has_shards && s.shards.shards.empty(), "0 shards: no shard section");
  expect(bucket_in_use(s) == 25 && s.fallback.blocks_live == 1, "0 shards: exact when quiet");
  for (std::size_t i = 25; i < live.size(); ++i) give(h, live[i]);
}

void buckets_only() {
  BucketsOnly h;
  std::vector<Block> live;
  for (std::size_t len : {16u, 100u, 256u})
    for (int i = 0; i < 100; ++i) live.push_back(take(h, len));
  live.push_back(take(h, 500));
  live.push_back(take(h, 64, 128));
  std::thread([&] {  // cross-thread frees through another CPU's cache, or the bucket
    for (std::size_t i = 0; i < live.size(); i += 2) give(h, live[i]);
  }).join();
  const sa::Stats s = h.snapshot_stats();
  emit(s);
  expect(s.has_buckets && s.has_fallback && s.has_memory && !s.has_shards, "buckets-only: buckets, fallback, memory");
  expect(bucket_in_use(s) == 150, "buckets-only: in_use exact when quiet");
  for (std::size_t i = 1; i < live.size(); i += 2) give(h, live[i]);
  h.trim(0);
  const sa::Stats after = h.snapshot_stats();
  emit(after);
  expect(bucket_in_use(after) == 0 && after.fallback.blocks_live == 0, "buckets-only: nothing live");
  expect(after.memory.in_use_bytes == 0 && after.memory.retained_bytes == 0, "buckets-only: trim(0) gave every slab back");
}

}  // namespace

int main() {
  small_pool_with_shards();
  small_pool_without_shards();
  buckets_only();
  return failures == 0 ? 0 : 1;
}
