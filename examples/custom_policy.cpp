// A complete policy of one's own, composed from sydra-alloc's parts:
//
//   classes   its own size-class table: 16 B to 4 KiB, four steps per doubling
//   Shards    two per-thread shards, no epochs (this program has no lock-free
//             readers), with stats
//   Buckets   mutex buckets for threads without a shard: PlainLock (no lock
//             timing), with stats
//   Fallback  Tracked<ArenaHeap>: everything the pools do not serve (over 4 KiB,
//             or aligned beyond 16) comes from one fixed mapping, first fit,
//             counted by Tracked
//   Regions   FixedArena: the slabs themselves come from a buffer this program
//             owns, not from the OS
//
// It allocates a mix of sizes from three threads, checks that each block came
// from where the policy says (slab region, or arena), moves a few blocks with
// remap, frees everything, prints the stats table and checks that nothing is
// left. Its checks are its test: it exits 1 if any fails.
#include <sydra/alloc.hpp>
#include <sydra/alloc/format.hpp>

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <mutex>
#include <new>
#include <thread>
#include <utility>
#include <vector>

namespace sa = sydra::alloc;

namespace {

// ---- ArenaHeap: a FallbackPolicy over one fixed mapping ---------------------------
// The mapping is made once (MAP_NORESERVE: pages are committed as they are
// touched) and never grows. Free space is an address-ordered list of extents
// kept inside the free memory itself; alloc takes the first extent that fits
// (after aligning), free puts the block back and merges it with both
// neighbours. Blocks carry no header: frees are sized, as in every sydra-alloc
// heap, so (pointer, length) says exactly which bytes come back. One mutex
// guards the list; the pools in front of this heap keep it off the hot path.
class ArenaHeap {
 public:
  struct Options {
    std::size_t bytes = std::size_t{16} << 20;
  };

  explicit ArenaHeap(const Options& o) noexcept {
    const std::size_t bytes = o.bytes / granule * granule;
    if (bytes < granule) return;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return;  // an arena with no memory: every alloc says nullptr, as when the OS says no
    base_ = static_cast<char*>(p);
    bytes_ = bytes;
    free_ = ::new (p) Extent{bytes, nullptr};
    free_bytes_ = bytes;
  }
  ArenaHeap(const ArenaHeap&) = delete;
  ArenaHeap& operator=(const ArenaHeap&) = delete;
  ~ArenaHeap() {
    if (base_ != nullptr) ::munmap(base_, bytes_);
  }

  // The handle only passes valid requests: len in 1..PTRDIFF_MAX, align a
  // power of two (already normalised), and frees with the len and align of
  // the allocation (or of the last successful resize or remap).
  void* alloc(std::size_t len, std::size_t align) noexcept {
    const std::size_t size = round_up(len);
    const std::uintptr_t a = std::max(align, granule);
    std::lock_guard g(mu_);
    Extent* prev = nullptr;
    for (Extent* e = free_; e != nullptr; prev = e, e = e->next) {
      const std::uintptr_t start = addr(e), end = start + e->bytes;
      const std::uintptr_t p = (start + a - 1) & ~(a - 1);
      if (p > end || end - p < size) continue;
      // [start, p) stays free in e (if not empty), [p + size, end) becomes a new extent.
      Extent* after = e->next;
      if (end - p > size) after = ::new (reinterpret_cast<void*>(p + size)) Extent{end - p - size, after};
      if (p > start) {
        e->bytes = p - start;
        e->next = after;
      } else {
        link(prev, after);
      }
      free_bytes_ -= size;
      return reinterpret_cast<void*>(p);
    }
    return nullptr;
  }

  void free(void* mem, std::size_t len, std::size_t) noexcept {
    std::lock_guard g(mu_);
    give_back(addr(mem), round_up(len));
  }

  // In place only: shrinking gives the tail back; growing takes the front of
  // the free extent that starts right where the block ends, if it is big enough.
  bool resize(void* mem, std::size_t len, std::size_t, std::size_t new_len) noexcept {
    const std::size_t old_size = round_up(len), new_size = round_up(new_len);
    if (new_size == old_size) return true;
    std::lock_guard g(mu_);
    const std::uintptr_t end = addr(mem) + old_size;
    if (new_size < old_size) {
      give_back(addr(mem) + new_size, old_size - new_size);
      return true;
    }
    const std::size_t more = new_size - old_size;
    Extent* prev = nullptr;
    Extent* e = free_;
    while (e != nullptr && addr(e) < end) {
      prev = e;
      e = e->next;
    }
    if (e == nullptr || addr(e) != end || e->bytes < more) return false;
    Extent* after = e->next;
    if (e->bytes > more) after = ::new (reinterpret_cast<void*>(end + more)) Extent{e->bytes - more, after};
    link(prev, after);
    free_bytes_ -= more;
    return true;
  }

  // May move: in place if it can, else allocate, copy, free. nullptr leaves
  // the old block valid (the handle then reports failure to its caller).
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    if (resize(mem, len, align, new_len)) return mem;
    void* p = alloc(new_len, align);
    if (p == nullptr) return nullptr;
    std::memcpy(p, mem, std::min(len, new_len));
    free(mem, len, align);
    return p;
  }

  // The handle's own bookkeeping memory (FallbackPolicy::backing_allocator):
  // the shard array, each thread's binding to a shard, each thread's counter
  // block for Tracked and the shard stats, and, with epochs, epoch slots and
  // retire bags. (Slab metadata and the pagemap are mapped by the pool
  // itself, not taken from here.)
  //
  // It comes from the system heap, not from the arena. The arena is the
  // budget for the program's own large blocks; bookkeeping grows with the
  // number of threads that touch the handle, not with the data, and its
  // small, long-lived blocks would sit between the program's blocks in the
  // first-fit list. Taken from the arena, a full arena would also leave a new
  // thread without a shard (the handle copes: such a thread uses the buckets)
  // and without counters. Return Allocator::of(*this) instead to keep every
  // byte inside the mapping.
  sa::Allocator backing_allocator() noexcept { return sa::Allocator::of(system_); }

  // For the checks below.
  bool owns(const void* p) const noexcept { return addr(p) >= addr(base_) && addr(p) < addr(base_) + bytes_; }
  std::size_t capacity() const noexcept { return bytes_; }
  struct FreeSpace {
    std::size_t bytes = 0;
    std::size_t extents = 0;
  };
  FreeSpace free_space() noexcept {
    std::lock_guard g(mu_);
    FreeSpace f;
    for (Extent* e = free_; e != nullptr; e = e->next) {
      f.bytes += e->bytes;
      ++f.extents;
    }
    return f;
  }

 private:
  struct Extent {  // lives in the free memory it describes
    std::size_t bytes;
    Extent* next;
  };
  static constexpr std::size_t granule = 16;  // every block and extent: a multiple of 16 bytes, 16-aligned
  static_assert(sizeof(Extent) <= granule);

  static std::uintptr_t addr(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }
  static std::size_t round_up(std::size_t n) noexcept { return (n + granule - 1) / granule * granule; }
  void link(Extent* prev, Extent* next) noexcept { (prev != nullptr ? prev->next : free_) = next; }

  // Under mu_: [p, p + size) becomes free, merged with the extents on either side.
  void give_back(std::uintptr_t p, std::size_t size) noexcept {
    Extent* prev = nullptr;
    Extent* next = free_;
    while (next != nullptr && addr(next) < p) {
      prev = next;
      next = next->next;
    }
    if ((prev != nullptr && addr(prev) + prev->bytes > p) || (next != nullptr && p + size > addr(next))) {
      // Overlaps free space: a double free or a wrong length. A real heap
      // would report it; this one refuses to corrupt its list.
      std::fprintf(stderr, "ArenaHeap: free of %zu bytes at %p overlaps free space\n", size,
                   reinterpret_cast<void*>(p));
      std::abort();
    }
    Extent* e;
    if (prev != nullptr && addr(prev) + prev->bytes == p) {
      e = prev;
      e->bytes += size;
    } else {
      e = ::new (reinterpret_cast<void*>(p)) Extent{size, next};
      link(prev, e);
    }
    if (next != nullptr && addr(e) + e->bytes == addr(next)) {
      e->bytes += next->bytes;
      e->next = next->next;
    }
    free_bytes_ += size;
  }

  std::mutex mu_;
  char* base_ = nullptr;
  std::size_t bytes_ = 0;
  Extent* free_ = nullptr;
  std::size_t free_bytes_ = 0;
  [[no_unique_address]] sa::SystemHeap system_;
};
static_assert(sa::FallbackPolicy<ArenaHeap>);

// ---- The policy ------------------------------------------------------------------
struct ArenaPolicy {
  static constexpr const char* name = "arena-4k";
  // 16, 24, 32, 40, 48, 56, 64, 80, 96, ..., 3072, 3584, 4096: 31 classes,
  // every request up to 4 KiB pooled with at most 25% waste above 32 bytes.
  static constexpr sa::SizeClassSpec classes{.min = 16, .steps_per_doubling = 4, .max = 4096};
  // Two shards: the first two threads to allocate own one each; any other
  // thread goes to the buckets. No epochs: nobody here reads without a lock.
  using Shards = sa::ThreadShards<sa::ShardFeatures{.count = 2, .epochs = false, .stats = true}>;
  // Lock timing off: PlainLock keeps no clock; the bucket counters stay on.
  using Buckets = sa::MutexBuckets<sa::PlainLock<>, sa::BucketFeatures{.stats = true}>;
  using Fallback = sa::Tracked<ArenaHeap>;
  // Slabs from a region this program owns (Options::regions below).
  using Regions = sa::FixedArena;
};
using Handle = sa::BasicAllocatorHandle<ArenaPolicy>;
static_assert(Handle::Classes::max_size == 4096 && Handle::Classes::count == 31);
static_assert(Handle::has_stats && !Handle::has_epochs);

// The slab region: 16 MiB of this program's own memory (bss: pages are
// committed only as slabs are carved). FixedArena aligns it to 64 KiB.
std::byte slab_region[std::size_t{16} << 20];

int failures = 0;
template <class... Args>
void check(bool ok, fmt::format_string<Args...> what, Args&&... args) {
  if (ok) return;
  ++failures;
  fmt::print(stderr, "FAIL: {}\n", fmt::format(what, std::forward<Args>(args)...));
}

bool in_slab_region(const void* p) {
  const auto* b = static_cast<const std::byte*>(p);
  return b >= slab_region && b < slab_region + sizeof slab_region;
}

struct Block {
  void* p;
  std::size_t len;
  std::size_t align;
};

void fill(const Block& b) { std::memset(b.p, static_cast<int>(b.len & 0xff), b.len); }
bool intact(const Block& b, std::size_t len) {
  const auto* c = static_cast<const unsigned char*>(b.p);
  return std::all_of(c, c + len, [&](unsigned char x) { return x == (b.len & 0xff); });
}

// Where a block must have come from, by the policy's rules: pooled (a slab of
// this handle, inside the slab region) for 1..4096 bytes at alignment <= 16,
// the arena for the rest.
void check_route(Handle& h, const Block& b) {
  const bool pooled = b.len <= 4096 && b.align <= 16;
  sa::SlabMeta* m = sa::Pagemap::lookup(b.p);
  if (pooled) {
    check(m != nullptr && in_slab_region(b.p), "{} B at align {}: expected a slab in the slab region", b.len, b.align);
  } else {
    check(m == nullptr && h.fallback().inner().owns(b.p), "{} B at align {}: expected the arena", b.len, b.align);
  }
  check(reinterpret_cast<std::uintptr_t>(b.p) % b.align == 0, "{} B at align {}: misaligned", b.len, b.align);
}

// A worker: 1,200 blocks of sizes 1 B to 6 KiB (a tenth above 4 KiB), each
// filled and checked; frees every other one itself and hands the rest to the
// main thread (cross-thread frees). Both workers stay alive until both are
// done (a thread that exits gives its shard back, and the other would take it).
void worker(Handle& h, unsigned seed, std::vector<Block>& handed_over, std::latch& both_done) {
  sa::Allocator a = h.allocator();
  std::uint64_t x = seed;
  auto next = [&x] {
    x = x * 6364136223846793005u + 1442695040888963407u;
    return static_cast<std::size_t>(x >> 33);
  };
  std::vector<Block> mine;
  for (int i = 0; i < 1200; ++i) {
    const std::size_t len = next() % 10 == 0 ? 4097 + next() % 2048 : 1 + next() % 4096;
    const std::size_t align = std::size_t{1} << (next() % 5);  // 1..16: pooled alignments
    Block b{a.alloc(len, align), len, align};
    check(b.p != nullptr, "worker: alloc({}, {}) failed", len, align);
    if (b.p == nullptr) continue;
    fill(b);
    check_route(h, b);
    mine.push_back(b);
  }
  for (std::size_t i = 0; i < mine.size(); ++i) {
    check(intact(mine[i], mine[i].len), "worker: {} B block overwritten", mine[i].len);
    if (i % 2 == 0) a.free(mine[i].p, mine[i].len, mine[i].align);
    else handed_over.push_back(mine[i]);
  }
  both_done.arrive_and_wait();
}

}  // namespace

int main() {
  Handle h(Handle::Options{.fallback = {.bytes = std::size_t{16} << 20},
                           .regions = {.base = slab_region, .bytes = sizeof slab_region}});
  sa::Allocator a = h.allocator();

  // 1. Every class boundary and its neighbours, at the pooled alignments,
  //    then what the pools must not take: over 4 KiB, or aligned beyond 16.
  std::vector<Block> blocks;
  for (const std::uint32_t size : Handle::Classes::sizes) {
    for (const std::size_t len : {std::size_t{size} - 1, std::size_t{size}, std::size_t{size} + 1}) {
      if (len == 0) continue;
      for (const std::size_t align : {1, 8, 16}) blocks.push_back({a.alloc(len, align), len, align});
    }
  }
  for (const std::size_t len : {4097, 6000, 8192, 65536, 1 << 20}) blocks.push_back({a.alloc(len, 16), len, 16});
  for (const std::size_t len : {16, 100, 4096}) blocks.push_back({a.alloc(len, 64), len, 64});
  blocks.push_back({a.alloc(3000, 4096), 3000, 4096});
  for (const Block& b : blocks) {
    check(b.p != nullptr, "alloc({}, {}) failed", b.len, b.align);
    if (b.p == nullptr) return 1;
    fill(b);
    check_route(h, b);
  }

  // 2. Two worker threads next to this one: the main thread and the first
  //    worker to allocate take the two shards, the other worker finds none
  //    and uses the buckets. Half of their blocks are freed here.
  std::vector<Block> handed_a, handed_b;
  std::latch both_done(2);
  std::thread wa(worker, std::ref(h), 1u, std::ref(handed_a), std::ref(both_done));
  std::thread wb(worker, std::ref(h), 2u, std::ref(handed_b), std::ref(both_done));
  wa.join();
  wb.join();

  // 3. Blocks that move: within the pools, out to the arena, and grown in the arena.
  struct Move {
    std::size_t from, to;
  };
  for (const Move mv : {Move{100, 3000}, Move{3000, 6000}, Move{5000, 20000}, Move{20000, 300}}) {
    Block b{a.alloc(mv.from, 8), mv.from, 8};
    check(b.p != nullptr, "alloc({}) for remap failed", mv.from);
    if (b.p == nullptr) return 1;
    fill(b);
    void* q = a.remap(b.p, mv.from, 8, mv.to);
    check(q != nullptr, "remap {} -> {} failed", mv.from, mv.to);
    if (q == nullptr) {
      a.free(b.p, b.len, 8);
      continue;
    }
    const Block moved{q, mv.to, 8};
    check(intact(Block{q, b.len, 8}, std::min(mv.from, mv.to)), "remap {} -> {} lost the contents", mv.from, mv.to);
    check_route(h, moved);
    fill(moved);
    blocks.push_back(moved);
  }

  // 4. The table, with the blocks above still live.
  const sa::Stats live = h.snapshot_stats();
  fmt::print("{}", live);
  check(live.has_shards && live.shards.shard_count == 2, "expected two shards");
  check(live.has_buckets && live.classes.size() == Handle::Classes::count, "expected the policy's 31 classes");
  check(live.shards.alloc_hits > 0, "no allocation was served by a shard");
  check(live.shards.alloc_misses > 0, "no allocation was served by the buckets (the third thread has no shard)");
  check(live.fallback.allocs > 0 && live.fallback.blocks_live > 0, "the arena served nothing");
  std::uint64_t acquisitions = 0;
  for (const sa::BucketStats& b : live.buckets) acquisitions += b.lock.acquisitions;
  check(acquisitions == 0, "PlainLock recorded lock statistics");

  // 5. Free everything, from this thread, and check that nothing is left:
  //    no live block in any layer, and the arena whole again (one extent).
  for (const auto* list : {&blocks, &handed_a, &handed_b}) {
    for (const Block& b : *list) {
      check(intact(b, b.len), "{} B block overwritten before its free", b.len);
      a.free(b.p, b.len, b.align);
    }
  }
  h.collect_garbage();  // the frees of other shards' blocks made from here: back to their shards
  // Free blocks cached in shards and per-CPU caches go back to their slabs,
  // and emptied slabs back to the pool. Nothing is decommitted: the slab
  // region is this program's memory, which a FixedArena never gives to the OS.
  const std::size_t decommitted = h.trim(0);
  const sa::LeakReport left = h.leaks();
  const ArenaHeap::FreeSpace arena = h.fallback().inner().free_space();
  const sa::Stats end = h.snapshot_stats();
  check(left.blocks == 0 && left.bytes == 0 && !left.underflow, "{} blocks ({} bytes) still live", left.blocks,
        left.bytes);
  check(end.fallback.blocks_live == 0 && end.fallback.allocs == end.fallback.frees, "fallback counts do not balance");
  check(arena.bytes == h.fallback().inner().capacity() && arena.extents == 1,
        "arena not whole again: {} of {} bytes free in {} extents", arena.bytes, h.fallback().inner().capacity(),
        arena.extents);
  check(end.memory.reserved_bytes <= sizeof slab_region, "slabs outside the slab region");
  check(decommitted == 0 && end.memory.decommitted_bytes == 0, "a FixedArena slab was decommitted");
  check(end.memory.in_use_bytes < live.memory.in_use_bytes, "trim() gave no slab back to the pool");

  fmt::print("after freeing everything and trim(): {} blocks live; arena {} KiB free in {} extent; slab region: {} KiB "
             "reserved, {} KiB of slabs in use, {} KiB retained (a FixedArena is never decommitted)\n",
             left.blocks, arena.bytes >> 10, arena.extents, end.memory.reserved_bytes >> 10,
             end.memory.in_use_bytes >> 10, end.memory.retained_bytes >> 10);
  if (failures != 0) {
    fmt::print(stderr, "custom_policy: {} check(s) failed\n", failures);
    return 1;
  }
  fmt::print("custom_policy: all checks passed\n");
  return 0;
}
