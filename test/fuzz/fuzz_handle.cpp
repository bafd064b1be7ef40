// libFuzzer harness: BasicAllocatorHandle<SmallPoolPolicy> against a model.
//
// One handle (a function-local static, two shards) lives for the whole run.
// Each input is a sequence of operations on it; the model keeps every live
// block (pointer, length, alignment, fill byte, which policy serves it) and
// every retired block that is still allocated. retire() keeps any block
// (shard, bucket or fallback alike) allocated under a side record until a
// collect_garbage() finds its epoch stamp below the minimum pin and frees it
// normally; the model predicts exactly which records each collect drains.
// After each operation:
//   - every live block, and every retired block not yet drained (all of its
//     bytes: retire must neither write nor poison it), still holds its fill
//     byte, and is aligned;
//   - no two blocks overlap (address-ordered map, checked at insertion), and
//     no retired, not yet drained block is handed out again;
//   - leaks() is exact: one block per live or not-yet-drained retired block;
//     bytes = the size class for pooled blocks, the length for fallback ones;
//   - snapshot_stats() is exact: fallback allocs/frees/resizes/remaps and the
//     size histogram, per-class in_use of shards and buckets, the epoch and
//     pin state; no shard deferral at all (one thread: every free, including
//     a drained retire's, is the owning shard's local free), so no backlog.
// Each input ends with everything freed, no pin and an unpinned
// collect_garbage(), so the handle is clean (leaks() == 0) for the next one.
//
// Input format: a stream of operations, each an opcode byte (% 20) followed
// by its argument bytes (see run_one); missing bytes read as 0. Set
// FUZZ_HANDLE_TRACE=1 to print each operation when replaying an input.
#include <sydra/alloc/modes.hpp>
#include <sydra/alloc/slab/pagemap.hpp>

#include <malloc.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace sa = sydra::alloc;
using Handle = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;

namespace {

[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char* fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  std::fputs("fuzz-handle: check failed: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_CHECK(cond, fmt, ...)                                                  \
  do {                                                                              \
    if (!(cond)) fail("line %d: %s: " fmt, __LINE__, #cond __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)

using u64 = unsigned long long;  // for printf

Handle& handle() {
  static Handle h(Handle::Options{.pool = {.shards = 2}, .print_leaks = false});
  return h;
}

constexpr std::size_t kMaxLive = 64;
constexpr std::size_t kMaxPending = 64;

// ---- The contract, restated independently of request.hpp ----------------------
std::size_t norm(std::size_t align) { return align == 0 ? 1 : align; }
bool valid_request(std::size_t len, std::size_t align) {
  const std::size_t a = norm(align);
  return len != 0 && std::has_single_bit(a) && len <= static_cast<std::size_t>(PTRDIFF_MAX) - (a - 1);
}
// Served by the pools: 1..256 bytes, alignment 0, 1, 2, 4 or 8.
bool pool_eligible(std::size_t len, std::size_t align) {
  return len >= 1 && len <= sa::max_pooled_size && (align == 0 || (align <= 8 && std::has_single_bit(align)));
}

enum class Kind : std::uint8_t { fallback, shard, bucket };
const char* kind_name(Kind k) { return k == Kind::fallback ? "fallback" : k == Kind::shard ? "shard" : "bucket"; }

struct Where {
  Kind kind;
  unsigned cls;  // pooled only
};

Where classify(Handle& h, const void* p) {
  const sa::SlabHeader* slab = sa::Pagemap::lookup(p);
  if (slab == nullptr) return {Kind::fallback, 0};
  FUZZ_CHECK(slab->handle == &h, "pooled block %p belongs to another handle", p);
  FUZZ_CHECK(slab->size_class < sa::class_count, "slab class %u", unsigned{slab->size_class});
  FUZZ_CHECK(slab->block_size == sa::size_classes[slab->size_class], "slab block size %u for class %u",
             slab->block_size, unsigned{slab->size_class});
  return {slab->kind == sa::SlabKind::shard ? Kind::shard : Kind::bucket, slab->size_class};
}

struct Block {
  unsigned char* p;
  std::size_t len;
  std::size_t align;  // as passed to alloc (0 stays 0)
  unsigned char fill;
  Kind kind;
  unsigned cls;
};

// Bytes a block occupies: its class for pooled blocks, its length otherwise.
std::size_t extent_of(const Block& b) { return b.kind == Kind::fallback ? b.len : sa::size_classes[b.cls]; }

struct Retired {
  Block block;
  std::uint64_t stamp;  // epoch at retire()
};

struct Counters {  // fallback stats, as deltas over the input
  std::uint64_t allocs = 0, frees = 0, resizes = 0, remaps = 0;
  std::array<std::uint64_t, sa::fallback_bins> sizes{};
};

struct Baseline {
  sa::FallbackStats fallback;
  std::uint64_t misses = 0;
  std::uint64_t deferred = 0;
};

bool all_equal(const unsigned char* p, std::size_t n, unsigned char b) {
  if (n == 0) return true;
  return p[0] == b && std::memcmp(p, p + 1, n - 1) == 0;
}
std::size_t first_mismatch(const unsigned char* p, std::size_t n, unsigned char b) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != b) return i;
  return n;
}

class Model {
 public:
  explicit Model(Handle& h) : h_(h) {
    const sa::Stats s = h_.snapshot_stats();
    base_.fallback = s.fallback;
    base_.misses = s.shards.alloc_misses;
    base_.deferred = s.shards.deferred_total;
    FUZZ_CHECK(s.fallback.allocs == s.fallback.frees, "handle not clean at input start: %llu allocs, %llu frees",
               u64{s.fallback.allocs}, u64{s.fallback.frees});
    FUZZ_CHECK(s.shards.deferred_total == s.shards.reclaimed_total, "backlog %llu at input start",
               u64{s.shards.deferred_total - s.shards.reclaimed_total});
    const sa::LeakReport r = h_.leaks();
    FUZZ_CHECK(r.blocks == 0 && r.bytes == 0, "handle not clean at input start: %llu blocks, %llu bytes",
               u64{r.blocks}, u64{r.bytes});
  }

  std::size_t live_count() const { return live_.size(); }

  // ---- Operations ------------------------------------------------------------
  void alloc(std::size_t len, std::size_t align) {
    void* p = h_.alloc(len, align);
    if (!valid_request(len, align)) {
      FUZZ_CHECK(p == nullptr, "alloc(%zu, %zu) of an invalid request returned %p", len, align, p);
      return;
    }
    FUZZ_CHECK(p != nullptr, "alloc(%zu, %zu) returned nullptr", len, align);
    Block b{static_cast<unsigned char*>(p), len, align, next_fill(), Kind::fallback, 0};
    place(b, "alloc");
    if (b.kind == Kind::fallback) count_fallback_alloc(len);
    std::memset(b.p, b.fill, b.len);
    live_.push_back(b);
  }

  void free(std::size_t i) {
    const Block b = take(i);
    erase_extent(b.p);
    h_.free(b.p, b.len, b.align);
    if (b.kind == Kind::fallback) ++exp_.frees;
  }

  void resize(std::size_t i, std::size_t new_len) {
    Block& b = live_[i];
    bool expect;
    if (!valid_request(new_len, b.align))
      expect = false;
    else if (b.kind != Kind::fallback)
      expect = new_len <= sa::max_pooled_size && sa::size_class_of(new_len) == b.cls;
    else if (pool_eligible(new_len, b.align))
      expect = false;  // a fallback block never shrinks into the pooled range (small means pooled)
    else
      expect = ::malloc_usable_size(b.p) >= new_len;  // SystemHeap: in place iff it fits the chunk
    const bool ok = h_.resize(b.p, b.len, b.align, new_len);
    FUZZ_CHECK(ok == expect, "resize(%p, %zu, %zu, %zu) of a %s block returned %d", static_cast<void*>(b.p), b.len,
               b.align, new_len, kind_name(b.kind), ok);
    if (!ok) return;
    if (b.kind == Kind::fallback) {
      ++exp_.resizes;
      erase_extent(b.p);
      const std::size_t old_len = b.len;
      b.len = new_len;
      insert_extent(b.p, extent_of(b), "resize");
      if (new_len > old_len) std::memset(b.p + old_len, b.fill, new_len - old_len);
    } else {
      const std::size_t old_len = b.len;
      b.len = new_len;
      if (new_len > old_len) std::memset(b.p + old_len, b.fill, new_len - old_len);
    }
  }

  void remap(std::size_t i, std::size_t new_len) {
    Block old = live_[i];
    const std::size_t usable = old.kind == Kind::fallback ? ::malloc_usable_size(old.p) : 0;
    void* q = h_.remap(old.p, old.len, old.align, new_len);
    if (!valid_request(new_len, old.align)) {
      FUZZ_CHECK(q == nullptr, "remap(%p, %zu, %zu, %zu) of an invalid request returned %p",
                 static_cast<void*>(old.p), old.len, old.align, new_len, q);
      return;
    }
    const bool to_pool = pool_eligible(new_len, old.align);
    bool in_place = false;
    if (old.kind != Kind::fallback) {
      in_place = to_pool && sa::size_class_of(new_len) == old.cls;
      FUZZ_CHECK(q != nullptr, "remap of a pooled block (%zu -> %zu, align %zu) returned nullptr", old.len, new_len,
                 old.align);
      if (in_place)
        FUZZ_CHECK(q == old.p, "remap within class %u moved the block", old.cls);
      else
        FUZZ_CHECK(q != old.p, "remap of a pooled block across classes (%zu -> %zu) stayed in place", old.len,
                   new_len);
      if (!in_place && !to_pool) count_fallback_alloc(new_len);
    } else if (to_pool) {
      FUZZ_CHECK(q != nullptr && q != old.p, "remap of a fallback block into the pool (%zu -> %zu) returned %p",
                 old.len, new_len, q);
      ++exp_.frees;
    } else {
      // Stays in the fallback: Tracked counts one remap, no alloc, no free.
      if (usable >= new_len)
        FUZZ_CHECK(q == old.p, "fallback remap that fits the chunk (%zu <= usable %zu) returned %p, not %p", new_len,
                   usable, q, static_cast<void*>(old.p));
      else if (norm(old.align) > alignof(std::max_align_t))
        FUZZ_CHECK(q == nullptr, "over-aligned fallback remap (%zu -> %zu, align %zu) returned %p", old.len, new_len,
                   old.align, q);
      else
        FUZZ_CHECK(q != nullptr, "fallback remap (%zu -> %zu, align %zu) returned nullptr", old.len, new_len,
                   old.align);
      if (q != nullptr) ++exp_.remaps;
      in_place = q == old.p;
    }
    if (q == nullptr) return;  // the old block must be intact: check_contents() says so

    Block nb = old;
    nb.p = static_cast<unsigned char*>(q);
    nb.len = new_len;
    const std::size_t keep = std::min(old.len, new_len);
    FUZZ_CHECK(all_equal(nb.p, keep, old.fill),
               "remap(%zu -> %zu, align %zu, %s -> %p) lost the contents at byte %zu (want 0x%02x)", old.len, new_len,
               old.align, kind_name(old.kind), q, first_mismatch(nb.p, keep, old.fill), old.fill);
    erase_extent(old.p);
    place(nb, "remap");
    FUZZ_CHECK((nb.kind != Kind::fallback) == to_pool, "remap to %zu (align %zu) landed in the %s", new_len,
               old.align, kind_name(nb.kind));
    if (in_place) FUZZ_CHECK(nb.kind == old.kind && nb.cls == old.cls, "in-place remap changed the block's owner");
    nb.fill = next_fill();
    std::memset(nb.p, nb.fill, nb.len);
    live_[i] = nb;
  }

  void retire(std::size_t i) {
    const Block& b = live_[i];
    const std::uint64_t stamp = h_.shards().current_epoch();
    const bool ok = h_.retire(b.p, b.len, b.align);
    // False only if the 40-byte side record could not be allocated from the
    // backing heap, which does not happen here (ASan aborts on a failed malloc
    // rather than returning null), so any refusal is a bug.
    FUZZ_CHECK(ok, "retire of a %s block (len %zu, align %zu) returned false", kind_name(b.kind), b.len, b.align);
    // Every kind alike: still allocated (extent kept, counted live, contents
    // untouched) until a collect_garbage() drains its record.
    pending_.push_back({take(i), stamp});
  }

  void toggle_pin() {
    if (!pin_) {
      const std::uint64_t cur = h_.shards().current_epoch();
      const std::optional<std::uint64_t> e = h_.enter_epoch();
      FUZZ_CHECK(e.has_value(), "enter_epoch() returned no epoch with shards running");
      FUZZ_CHECK(*e == cur, "enter_epoch() returned %llu, current epoch %llu", u64{*e}, u64{cur});
      pin_ = *e;
    } else {
      h_.leave_epoch(*pin_);
      pin_.reset();
    }
  }

  void advance() {
    const std::uint64_t cur = h_.shards().current_epoch();
    const std::optional<std::uint64_t> e = h_.advance_epoch();
    const std::uint64_t want = next_epoch(cur);
    FUZZ_CHECK(e.has_value() && *e == want, "advance_epoch() from %llu (pin %lld) returned %lld, want %llu", u64{cur},
               pin_ ? static_cast<long long>(*pin_) : -1LL, e ? static_cast<long long>(*e) : -1LL, u64{want});
    FUZZ_CHECK(h_.shards().current_epoch() == want, "epoch %llu after advance, want %llu",
               u64{h_.shards().current_epoch()}, u64{want});
  }

  void collect() {
    // Every pending block must be intact right up to the collect that frees it.
    check_pending_contents("before collect_garbage");
    const sa::Stats before = h_.snapshot_stats();
    const std::uint64_t cur = h_.shards().current_epoch();
    // collect_garbage advances first, then drains every record stamped below
    // the minimum pin (all of them when nothing is pinned). The advance does
    // not change the minimum pin, and our pin is the only one.
    const std::uint64_t safe_below = pin_ ? *pin_ : sa::EpochDomain::nobody_pinned;
    std::vector<Retired> keep;
    std::vector<Block> drained;
    for (const Retired& r : pending_) (r.stamp < safe_below ? drained.push_back(r.block) : keep.push_back(r));
    const std::size_t got = h_.collect_garbage();
    const sa::Stats after = h_.snapshot_stats();
    const std::uint64_t moved = after.shards.reclaimed_total - before.shards.reclaimed_total;
    // One thread: nothing is ever deferred to a shard, so nothing is moved.
    FUZZ_CHECK(moved == 0 && after.shards.deferred_total == before.shards.deferred_total,
               "collect_garbage() moved %llu shard blocks (deferred %llu -> %llu) with one thread", u64{moved},
               u64{before.shards.deferred_total}, u64{after.shards.deferred_total});
    FUZZ_CHECK(got == drained.size(),
               "collect_garbage() returned %zu, want %zu retired records drained (%zu pending, pin %lld)", got,
               drained.size(), pending_.size(), pin_ ? static_cast<long long>(*pin_) : -1LL);
    // One advance, collect_garbage's own (it moves only if no pin lags behind).
    const std::uint64_t want = next_epoch(cur);
    FUZZ_CHECK(h_.shards().current_epoch() == want, "epoch %llu after collect_garbage from %llu, want %llu",
               u64{h_.shards().current_epoch()}, u64{cur}, u64{want});
    for (const Block& b : drained) {
      erase_extent(b.p);
      if (b.kind == Kind::fallback) ++exp_.frees;
    }
    pending_ = std::move(keep);
    if (!pin_) FUZZ_CHECK(pending_.empty(), "%zu retired blocks kept by an unpinned collect_garbage", pending_.size());
    FUZZ_CHECK(after.shards.backlog == 0, "backlog %llu after collect_garbage", u64{after.shards.backlog});
  }

  // Ends the input: no pin, nothing live, nothing pending, nothing deferred.
  void finish() {
    if (pin_) toggle_pin();
    while (!live_.empty()) free(live_.size() - 1);
    const std::size_t pending = pending_.size();
    collect();
    FUZZ_CHECK(pending_.empty(), "%zu retired blocks survived an unpinned collect_garbage (of %zu)", pending_.size(),
               pending);
    FUZZ_CHECK(extents_.empty(), "%zu extents left in the model", extents_.size());
    check();
    const sa::LeakReport r = h_.leaks();
    FUZZ_CHECK(r.blocks == 0 && r.bytes == 0, "%llu blocks, %llu bytes live after freeing everything", u64{r.blocks},
               u64{r.bytes});
  }

  // ---- Checks ------------------------------------------------------------------
  void check() {
    check_contents();
    check_leaks();
    check_stats();
  }

  std::size_t pick(std::uint8_t b) const { return b % live_.size(); }
  std::size_t len_of(std::size_t i) const { return live_[i].len; }
  std::size_t align_of(std::size_t i) const { return live_[i].align; }
  bool pending_full() const { return pending_.size() >= kMaxPending; }
  bool pinned() const { return pin_.has_value(); }

 private:
  std::uint64_t next_epoch(std::uint64_t cur) const {
    // EpochDomain::advance: moves only when no pinned thread lags behind.
    return pin_ && *pin_ < cur ? cur : cur + 1;
  }

  unsigned char next_fill() {
    for (;;) {
      fill_ = static_cast<unsigned char>(fill_ * 33u + 0x5Bu);
      // 0: fresh memory; 0xBE: ASan's malloc fill; 0xDF: the pool's junk fill.
      if (fill_ != 0 && fill_ != 0xBE && fill_ != 0xDF) return fill_;
    }
  }

  Block take(std::size_t i) {
    const Block b = live_[i];
    live_[i] = live_.back();
    live_.pop_back();
    return b;
  }

  void count_fallback_alloc(std::size_t len) {
    ++exp_.allocs;
    ++exp_.sizes[sa::fallback_bin_of(len)];
  }

  // Classifies a block just handed out, checks routing, alignment and overlap.
  void place(Block& b, const char* what) {
    const std::size_t a = norm(b.align);
    FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(b.p) % a == 0, "%s(%zu, %zu) returned %p, misaligned", what, b.len,
               b.align, static_cast<void*>(b.p));
    const Where w = classify(h_, b.p);
    b.kind = w.kind;
    b.cls = w.cls;
    if (pool_eligible(b.len, b.align)) {
      // This thread holds one of the two shards, so a pooled request is a shard's.
      FUZZ_CHECK(b.kind == Kind::shard, "%s(%zu, %zu) was served by the %s, not this thread's shard", what, b.len,
                 b.align, kind_name(b.kind));
      FUZZ_CHECK(b.cls == sa::size_class_of(b.len), "%s(%zu) got a block of class %u (size %u)", what, b.len, b.cls,
                 unsigned{sa::size_classes[b.cls]});
    } else {
      FUZZ_CHECK(b.kind == Kind::fallback, "%s(%zu, %zu) was served by a %s slab", what, b.len, b.align,
                 kind_name(b.kind));
    }
    // A retired block stays allocated until the collect that drains it: in
    // particular one retired under our pin cannot come back before we leave
    // the pin and collect.
    const auto lo = reinterpret_cast<std::uintptr_t>(b.p);
    for (const Retired& r : pending_) {
      const auto start = reinterpret_cast<std::uintptr_t>(r.block.p);
      FUZZ_CHECK(lo + extent_of(b) <= start || start + extent_of(r.block) <= lo,
                 "%s handed out %p (+%zu), overlapping the %s block %p (+%zu) retired at epoch %llu and not yet "
                 "collected (pin %lld%s)",
                 what, static_cast<void*>(b.p), extent_of(b), kind_name(r.block.kind), static_cast<void*>(r.block.p),
                 extent_of(r.block), u64{r.stamp}, pin_ ? static_cast<long long>(*pin_) : -1LL,
                 pin_ && r.stamp >= *pin_ ? ", retired under it" : "");
    }
    insert_extent(b.p, extent_of(b), what);
  }

  void insert_extent(const void* p, std::size_t n, const char* what) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    auto next = extents_.lower_bound(a);
    if (next != extents_.end())
      FUZZ_CHECK(next->first >= a + n, "%s: block [%p, +%zu) overlaps the block at %p (+%zu)", what, p, n,
                 reinterpret_cast<void*>(next->first), next->second);
    if (next != extents_.begin()) {
      const auto prev = std::prev(next);
      FUZZ_CHECK(prev->first + prev->second <= a, "%s: block [%p, +%zu) overlaps the block at %p (+%zu)", what, p, n,
                 reinterpret_cast<void*>(prev->first), prev->second);
    }
    extents_.emplace(a, n);
  }
  void erase_extent(const void* p) {
    const std::size_t n = extents_.erase(reinterpret_cast<std::uintptr_t>(p));
    FUZZ_CHECK(n == 1, "model lost the extent of %p", p);
  }

  void check_contents() const {
    for (const Block& b : live_) {
      FUZZ_CHECK(all_equal(b.p, b.len, b.fill), "%s block %p (len %zu, align %zu) changed at byte %zu (want 0x%02x)",
                 kind_name(b.kind), static_cast<void*>(b.p), b.len, b.align, first_mismatch(b.p, b.len, b.fill),
                 b.fill);
    }
    check_pending_contents("after the operation");
  }
  // Retired blocks are neither written nor poisoned until they are freed
  // (readers may still follow pointers stored anywhere in them, the first 16
  // bytes included): every byte must still read its fill. A poisoned block
  // makes ASan report the read here.
  void check_pending_contents(const char* when) const {
    for (const Retired& r : pending_) {
      const Block& b = r.block;
      FUZZ_CHECK(all_equal(b.p, b.len, b.fill),
                 "retired %s block %p (len %zu, align %zu, stamp %llu) changed at byte %zu (want 0x%02x, got 0x%02x) "
                 "%s, before the collect that frees it",
                 kind_name(b.kind), static_cast<void*>(b.p), b.len, b.align, u64{r.stamp},
                 first_mismatch(b.p, b.len, b.fill), b.fill,
                 first_mismatch(b.p, b.len, b.fill) < b.len ? b.p[first_mismatch(b.p, b.len, b.fill)] : 0, when);
    }
  }

  struct Tally {
    std::uint64_t blocks = 0, bytes = 0, fallback = 0;
    std::array<std::uint64_t, sa::class_count> shard{}, bucket{};
    void add(const Block& b) {
      ++blocks;
      bytes += b.kind == Kind::fallback ? b.len : sa::size_classes[b.cls];
      if (b.kind == Kind::fallback) ++fallback;
      if (b.kind == Kind::shard) ++shard[b.cls];
      if (b.kind == Kind::bucket) ++bucket[b.cls];
    }
  };
  Tally tally() const {
    Tally t;
    for (const Block& b : live_) t.add(b);
    for (const Retired& r : pending_) t.add(r.block);  // not yet freed: still live to every counter
    return t;
  }

  void check_leaks() {
    const Tally t = tally();
    const sa::LeakReport r = h_.leaks();
    FUZZ_CHECK(r.blocks == t.blocks && r.bytes == t.bytes,
               "leaks() = {%llu blocks, %llu bytes}, model {%llu, %llu} (%zu live, %zu retired pending)",
               u64{r.blocks}, u64{r.bytes}, u64{t.blocks}, u64{t.bytes}, live_.size(), pending_.size());
  }

  void check_stats() {
    const Tally t = tally();
    const sa::Stats s = h_.snapshot_stats();
    FUZZ_CHECK(s.version == sa::Stats::current_version, "stats version %u", s.version);
    FUZZ_CHECK(s.mode == std::string_view("small_pool"), "stats mode %.*s", static_cast<int>(s.mode.size()),
               s.mode.data());
    FUZZ_CHECK(s.has_fallback && s.has_buckets && s.has_shards, "has_* %d %d %d", s.has_fallback, s.has_buckets,
               s.has_shards);

    const sa::FallbackStats& f = s.fallback;
    FUZZ_CHECK(f.allocs - f.frees == t.fallback, "fallback allocs - frees = %llu, model has %llu fallback blocks",
               u64{f.allocs - f.frees}, u64{t.fallback});
    FUZZ_CHECK(f.allocs - base_.fallback.allocs == exp_.allocs, "fallback allocs +%llu, want +%llu",
               u64{f.allocs - base_.fallback.allocs}, u64{exp_.allocs});
    FUZZ_CHECK(f.frees - base_.fallback.frees == exp_.frees, "fallback frees +%llu, want +%llu",
               u64{f.frees - base_.fallback.frees}, u64{exp_.frees});
    FUZZ_CHECK(f.resizes - base_.fallback.resizes == exp_.resizes, "fallback resizes +%llu, want +%llu",
               u64{f.resizes - base_.fallback.resizes}, u64{exp_.resizes});
    FUZZ_CHECK(f.remaps - base_.fallback.remaps == exp_.remaps, "fallback remaps +%llu, want +%llu",
               u64{f.remaps - base_.fallback.remaps}, u64{exp_.remaps});
    for (std::size_t i = 0; i < sa::fallback_bins; ++i)
      FUZZ_CHECK(f.sizes[i] - base_.fallback.sizes[i] == exp_.sizes[i], "fallback size bin %zu +%llu, want +%llu", i,
                 u64{f.sizes[i] - base_.fallback.sizes[i]}, u64{exp_.sizes[i]});

    for (std::size_t c = 0; c < sa::class_count; ++c) {
      const sa::BucketStats& b = s.buckets[c];
      FUZZ_CHECK(b.in_use == t.bucket[c], "bucket %zu in_use %llu, model %llu", c, u64{b.in_use}, u64{t.bucket[c]});
      if constexpr (sa::stats_enabled) {
        FUZZ_CHECK(b.allocations - b.frees == b.in_use, "bucket %zu: %llu allocations - %llu frees != in_use %llu", c,
                   u64{b.allocations}, u64{b.frees}, u64{b.in_use});
        FUZZ_CHECK(b.high_water >= b.in_use, "bucket %zu high_water %llu < in_use %llu", c, u64{b.high_water},
                   u64{b.in_use});
      }
    }

    const sa::ShardSummary& sh = s.shards;
    FUZZ_CHECK(sh.shard_count == 2 && sh.shards.size() == 2, "shard_count %llu, %zu shard entries",
               u64{sh.shard_count}, sh.shards.size());
    FUZZ_CHECK(sh.alloc_misses == base_.misses, "alloc_misses went from %llu to %llu", u64{base_.misses},
               u64{sh.alloc_misses});
    std::uint64_t deferred = 0, reclaimed = 0, backlog = 0, hits = 0;
    for (std::size_t c = 0; c < sa::class_count; ++c) {
      std::uint64_t in_use = 0;
      for (const sa::ShardStats& st : sh.shards) {
        const sa::ShardClassStats& cs = st.classes[c];
        FUZZ_CHECK(cs.size == sa::size_classes[c], "shard class %zu size %u", c, cs.size);
        FUZZ_CHECK(cs.reclaimed <= cs.deferred, "shard %u class %zu: reclaimed %llu > deferred %llu", st.index, c,
                   u64{cs.reclaimed}, u64{cs.deferred});
        in_use += cs.in_use;
      }
      FUZZ_CHECK(in_use == t.shard[c], "shard class %zu in_use %llu, model %llu", c, u64{in_use}, u64{t.shard[c]});
    }
    for (const sa::ShardStats& st : sh.shards) {
      backlog += st.backlog;
      hits += st.alloc_hits;
    }
    deferred = sh.deferred_total;
    reclaimed = sh.reclaimed_total;
    FUZZ_CHECK(sh.alloc_hits == hits && sh.backlog == backlog && backlog == deferred - reclaimed,
               "shard summary: hits %llu/%llu backlog %llu/%llu deferred %llu reclaimed %llu", u64{sh.alloc_hits},
               u64{hits}, u64{sh.backlog}, u64{backlog}, u64{deferred}, u64{reclaimed});
    // One thread: every free is the owner's local free, a drained retire's
    // included, and retire() itself defers nothing: no deferral, no backlog.
    FUZZ_CHECK(deferred == base_.deferred && reclaimed == base_.deferred,
               "deferred_total %llu, reclaimed_total %llu, want both %llu (%zu retired blocks pending)", u64{deferred},
               u64{reclaimed}, u64{base_.deferred}, pending_.size());
    FUZZ_CHECK(backlog == 0, "backlog %llu with one thread", u64{backlog});
    FUZZ_CHECK(sh.current_epoch == h_.shards().current_epoch(), "stats epoch %llu, handle %llu",
               u64{sh.current_epoch}, u64{h_.shards().current_epoch()});
    FUZZ_CHECK(sh.pinned_threads == (pin_ ? 1u : 0u), "pinned_threads %llu, pin %d", u64{sh.pinned_threads},
               pin_.has_value());
    FUZZ_CHECK(sh.min_pinned_epoch == (pin_ ? *pin_ : 0), "min_pinned_epoch %llu, pin %lld", u64{sh.min_pinned_epoch},
               pin_ ? static_cast<long long>(*pin_) : -1LL);
    FUZZ_CHECK(h_.shards().min_pinned() == (pin_ ? *pin_ : sa::EpochDomain::nobody_pinned), "min_pinned %llu",
               u64{h_.shards().min_pinned()});
  }

  Handle& h_;
  Baseline base_;
  Counters exp_;
  std::vector<Block> live_;
  std::vector<Retired> pending_;                    // blocks retired, not yet drained (any kind)
  std::map<std::uintptr_t, std::size_t> extents_;  // live + pending blocks, by address
  std::optional<std::uint64_t> pin_;
  unsigned char fill_ = 0x11;
};

// ---- Input decoding ------------------------------------------------------------
struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  bool empty() const { return n == 0; }
  std::uint8_t u8() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint16_t u16() {
    const unsigned lo = u8();
    return static_cast<std::uint16_t>(lo | (unsigned{u8()} << 8));
  }
};

std::size_t draw_align(Reader& r) {
  static constexpr std::size_t aligns[8] = {0, 1, 2, 4, 8, 16, 64, 4096};
  static constexpr std::size_t odd[8] = {3, 5, 6, 7, 12, 24, 48, 4097};  // not powers of two
  const std::uint8_t b = r.u8();
  return b < 248 ? aligns[b & 7] : odd[b & 7];
}

// 1..300 mostly, sometimes 300..10000, 0, a class boundary, or a length no
// alignment can serve (never a valid huge request: ASan would abort on it).
std::size_t draw_len(Reader& r, std::size_t align) {
  const std::uint8_t s = r.u8();
  const std::uint16_t v = r.u16();
  if (s < 176) return 1 + v % 300;
  if (s < 216) return 300 + v % 9701;
  if (s < 232) return 0;
  if (s < 248) return sa::size_classes[v % sa::class_count] - 1 + (v >> 8) % 3;
  const std::size_t a = norm(align);
  const auto max = static_cast<std::size_t>(PTRDIFF_MAX);
  switch (v % 4) {
    case 0: return SIZE_MAX;
    case 1: return max + 1;
    case 2: return std::has_single_bit(a) ? max - (a - 1) + 1 : max;
    default: return SIZE_MAX - (v >> 2);
  }
}

// Near the old length (often the same class), or a fresh draw.
std::size_t draw_new_len(Reader& r, std::size_t old_len, std::size_t align) {
  const std::uint8_t s = r.u8();
  if (s < 96) {
    const long d = static_cast<long>(r.u8() % 49) - 24;
    const long n = static_cast<long>(old_len) + d;
    return n < 1 ? 1 : static_cast<std::size_t>(n);
  }
  return draw_len(r, align);
}

bool tracing() {
  static const bool on = [] {
    const char* v = std::getenv("FUZZ_HANDLE_TRACE");
    return v != nullptr && *v != '\0' && *v != '0';
  }();
  return on;
}
#define TRACE(...)                                          \
  do {                                                      \
    if (tracing()) std::fprintf(stderr, "op: " __VA_ARGS__); \
  } while (0)

void run_one(Reader& r) {
  Handle& h = handle();
  Model m(h);
  m.check();
  while (!r.empty()) {
    const unsigned op = r.u8() % 20;
    switch (op) {
      case 0: case 1: case 2: case 3: case 4: case 5: {  // alloc(align, len)
        const std::size_t align = draw_align(r);
        const std::size_t len = draw_len(r, align);
        if (m.live_count() >= kMaxLive) {
          TRACE("free #%zu (at the cap)\n", m.pick(static_cast<std::uint8_t>(len)));
          m.free(m.pick(static_cast<std::uint8_t>(len)));
        } else {
          TRACE("alloc(%zu, %zu)\n", len, align);
          m.alloc(len, align);
        }
        break;
      }
      case 6: case 7: case 8: {  // free(index)
        const std::uint8_t i = r.u8();
        if (m.live_count() == 0) break;
        TRACE("free #%zu (len %zu, align %zu)\n", m.pick(i), m.len_of(m.pick(i)), m.align_of(m.pick(i)));
        m.free(m.pick(i));
        break;
      }
      case 9: case 10: {  // resize(index, new_len)
        const std::uint8_t i = r.u8();
        if (m.live_count() == 0) break;
        const std::size_t k = m.pick(i);
        const std::size_t n = draw_new_len(r, m.len_of(k), m.align_of(k));
        TRACE("resize #%zu (len %zu, align %zu) to %zu\n", k, m.len_of(k), m.align_of(k), n);
        m.resize(k, n);
        break;
      }
      case 11: case 12: case 13: {  // remap(index, new_len)
        const std::uint8_t i = r.u8();
        if (m.live_count() == 0) break;
        const std::size_t k = m.pick(i);
        const std::size_t n = draw_new_len(r, m.len_of(k), m.align_of(k));
        TRACE("remap #%zu (len %zu, align %zu) to %zu\n", k, m.len_of(k), m.align_of(k), n);
        m.remap(k, n);
        break;
      }
      case 14: case 15: {  // retire(index)
        const std::uint8_t i = r.u8();
        if (m.live_count() == 0 || m.pending_full()) break;
        TRACE("retire #%zu (len %zu, align %zu)\n", m.pick(i), m.len_of(m.pick(i)), m.align_of(m.pick(i)));
        m.retire(m.pick(i));
        break;
      }
      case 16:
        TRACE("%s\n", m.pinned() ? "leave_epoch" : "enter_epoch");
        m.toggle_pin();
        break;
      case 17:
        TRACE("collect_garbage\n");
        m.collect();
        break;
      case 18:
        TRACE("advance_epoch\n");
        m.advance();
        break;
      case 19:
        TRACE("snapshot_stats\n");
        break;  // the check below takes the snapshot
    }
    m.check();
  }
  TRACE("finish\n");
  m.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader r{data, size};
  run_one(r);
  return 0;
}
