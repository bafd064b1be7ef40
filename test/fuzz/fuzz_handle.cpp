// libFuzzer harness: BasicAllocatorHandle<SmallPoolPolicy> against a model.
//
// One handle (a function-local static, two shards) lives for the whole run,
// used by the fuzzer's one thread, which owns one of the shards from its
// first pooled allocation on. Each input is a sequence of operations on it;
// the model keeps every live block (pointer, length, alignment, fill byte,
// which layer serves it), this thread's open retire bag and every sealed bag
// that is not yet reclaimed, and predicts:
//   - routing: a request is pooled iff 1 <= len <= Classes::max_size at
//     alignment 0, 1, 2, 4, 8 or 16 and some class serves it (the smallest
//     class that holds len; at alignment 16, the smallest such class whose
//     size is a multiple of 16); pooled requests come from this thread's
//     shard (always the same one), in exactly that class; everything else
//     from the fallback;
//   - resize: a pooled block resizes iff the new (len, align) has the same
//     class; a fallback block iff the C heap's malloc_usable_size holds the
//     new length, whether or not that length is in the pooled range (its
//     later free still goes to the fallback: frees route by pointer);
//   - remap: in place within a class; otherwise a pooled block moves (to
//     another class or to the fallback), a fallback block moves into a pool
//     when the new size is poolable, and stays in the fallback (in place,
//     realloc, or nullptr when over-aligned) otherwise;
//   - retire and epochs: retire() appends to this thread's bag (64 entries);
//     retiring into a full bag seals it (stamped with the current epoch),
//     advances the epoch once and frees every sealed bag whose stamp is below
//     the minimum pin; collect_garbage() seals the open bag, advances the
//     epoch once, frees the reclaimable bags and returns how many blocks it
//     made reusable; advance_epoch() moves only when no pin lags behind;
//     nested pins keep the outer epoch; pin() guards pin and unpin;
//   - trim(keep): the shard's heads go back to their slabs, empty slabs
//     back to the pool, and retained slabs beyond keep are decommitted.
// After each operation:
//   - every live block, and every retired block not yet reclaimed (all of
//     its bytes: retire must neither write nor poison it), still holds its
//     fill byte, is aligned, and still sits in a slab of its class owned by
//     this thread's shard (pooled) or outside every slab (fallback);
//   - no two blocks overlap, and no retired, unreclaimed block is handed out;
//   - leaks() is exact: one block per live or unreclaimed retired block;
//     bytes = the class size for pooled blocks, the length for fallback ones;
//   - snapshot_stats() (version 2) is exact where the library says so (one
//     quiet thread): fallback allocs/frees/resizes/remaps, the size
//     histogram, live blocks and bytes; per-class shard allocations, frees
//     and in_use; no deferral, no batch in transit, no backlog, no bucket
//     traffic (this thread has a shard); the epoch, the pins, the retire
//     counters; slab counts and the pool's memory split agree with each
//     other and with the slabs the model's blocks occupy (exactly so after
//     a trim).
// Each input ends with no pin, everything freed and an unpinned
// collect_garbage(), so the handle is clean (leaks() == 0) for the next one.
//
// Input format: a stream of operations, each an opcode byte (% 24) followed
// by its argument bytes (decoded in run_one); missing bytes read as 0.
//   0-5 alloc(align, len)       6-8 free(i)            9-10 resize(i, len)
//   11-13 remap(i, len)         14-15 retire(i)        16 pin: enter, nest, leave
//   17 collect_garbage()        18 advance_epoch()     19 snapshot_stats()
//   20 alloc(len, 16)           21 trim(keep)          22 a burst of allocs
//   23 a burst of retires
// At 64 live blocks an alloc frees one instead. test/fuzz/make_corpus.py
// writes the seed corpus (test/fuzz/corpus) in this format: rerun it after
// changing the format. Set FUZZ_HANDLE_TRACE=1 to print each operation, and
// what it did, when replaying an input.
#include <sydra/alloc/modes.hpp>
#include <sydra/alloc/slab/pagemap.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

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
#include <set>
#include <string_view>
#include <utility>
#include <vector>

namespace sa = sydra::alloc;
using Handle = sa::BasicAllocatorHandle<sa::SmallPoolPolicy>;
using Classes = Handle::Classes;

static_assert(Handle::pooled && Handle::has_stats && Handle::counts_live && Handle::has_epochs,
              "the harness models small_pool: pools, stats, live counts and epochs");

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

constexpr std::size_t kShards = 2;
constexpr std::size_t kSlab = sa::slab_bytes;
// The pool keeps this many bytes of empty slabs committed; trim() keeps that
// much, trim(keep) keeps `keep`.
constexpr std::size_t kRetain = 8 * kSlab;

Handle& handle() {
  // The decommit delay is wall-clock time, which no deterministic model can
  // follow: with an unbounded delay, slabs are decommitted only by trim().
  static Handle h(Handle::Options{
      .pool = {.shards = kShards, .slabs = {.retain_bytes = kRetain, .decommit_delay_ms = UINT32_MAX}},
      .print_leaks = false});
  return h;
}

constexpr std::size_t kMaxLive = 64;
// Above one bag (RetireBags::bag_capacity), so that retiring into a full bag
// (which seals it, advances the epoch and reclaims) is reachable.
constexpr std::size_t kBag = sa::RetireBags::bag_capacity;
constexpr std::size_t kMaxPending = 2 * kBag + 32;
constexpr std::uint64_t kNobody = sa::EpochDomain::nobody_pinned;

// ---- The contract, restated independently of request.hpp and size_classes.hpp ----
std::size_t norm(std::size_t align) { return align == 0 ? 1 : align; }
bool valid_request(std::size_t len, std::size_t align) {
  const std::size_t a = norm(align);
  return len != 0 && std::has_single_bit(a) && len <= static_cast<std::size_t>(PTRDIFF_MAX) - (a - 1);
}
constexpr unsigned kNoClass = ~0u;
// The class that serves (len, align): the smallest that holds len and, at
// alignment 16, whose size is a multiple of 16 (blocks sit at multiples of
// their size from a 64 KiB-aligned base). kNoClass when the request is not
// pooled: too long, over-aligned (above malloc's 16), or no class fits.
unsigned model_class(std::size_t len, std::size_t align) {
  const std::size_t a = norm(align);
  if (len == 0 || len > Classes::max_size || !std::has_single_bit(a) || a > 16) return kNoClass;
  for (unsigned c = 0; c < Classes::count; ++c)
    if (Classes::sizes[c] >= len && (a <= 8 || Classes::sizes[c] % 16 == 0)) return c;
  return kNoClass;
}
std::size_t class_size(unsigned cls) { return Classes::sizes[cls]; }
std::uintptr_t slab_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{kSlab - 1}; }

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
// What an operation did, under the line that names it.
#define TRACE_RESULT(...)                                      \
  do {                                                         \
    if (tracing()) std::fprintf(stderr, "      -> " __VA_ARGS__); \
  } while (0)

enum class Kind : std::uint8_t { fallback, shard, bucket };
const char* kind_name(Kind k) { return k == Kind::fallback ? "fallback" : k == Kind::shard ? "shard" : "bucket"; }

// The shard this thread took: every pooled block of the run must be its.
const void* g_my_shard = nullptr;

struct Where {
  Kind kind;
  unsigned cls;  // pooled only
};

// What the pagemap says about a block the model holds (or was just handed).
Where classify(Handle& h, const void* p, const char* what) {
  const sa::SlabMeta* m = sa::Pagemap::lookup(p);
  if (m == nullptr) return {Kind::fallback, 0};
  FUZZ_CHECK(m->handle == &h, "%s: pooled block %p belongs to another handle", what, p);
  FUZZ_CHECK(m->kind != sa::SlabKind::empty, "%s: block %p lies in an empty slab", what, p);
  FUZZ_CHECK(m->size_class < Classes::count, "%s: slab class %u", what, unsigned{m->size_class});
  FUZZ_CHECK(m->block_size == class_size(m->size_class), "%s: slab block size %u for class %u", what,
             unsigned{m->block_size}, unsigned{m->size_class});
  FUZZ_CHECK(m->capacity == kSlab / m->block_size, "%s: slab capacity %u for blocks of %u", what,
             unsigned{m->capacity}, unsigned{m->block_size});
  // No header: the slab is 64 KiB of blocks from its (64 KiB-aligned) base.
  FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(m->base) == slab_of(p), "%s: block %p, slab base %p", what, p,
             static_cast<void*>(m->base));
  const auto off = static_cast<std::size_t>(static_cast<const char*>(p) - m->base);
  FUZZ_CHECK(off % m->block_size == 0 && off + m->block_size <= kSlab,
             "%s: block %p is not a block start of its slab (offset %zu, block size %u)", what, p, off,
             unsigned{m->block_size});
  FUZZ_CHECK(m->owner != nullptr, "%s: slab of %p has no owner", what, p);
  FUZZ_CHECK(m->used.load(std::memory_order_relaxed) >= 1, "%s: slab of live block %p counts no block out", what, p);
  if (m->kind == sa::SlabKind::shard) {
    if (g_my_shard == nullptr) g_my_shard = m->owner;
    FUZZ_CHECK(m->owner == g_my_shard, "%s: block %p belongs to shard %p, this thread's is %p", what, p, m->owner,
               g_my_shard);
  }
  return {m->kind == sa::SlabKind::shard ? Kind::shard : Kind::bucket, m->size_class};
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
std::size_t extent_of(const Block& b) { return b.kind == Kind::fallback ? b.len : class_size(b.cls); }

struct Bag {  // a sealed retire bag
  std::uint64_t stamp;  // the epoch when it was sealed
  std::vector<Block> blocks;
};

struct Counters {  // expected changes over the input
  std::uint64_t allocs = 0, frees = 0, resizes = 0, remaps = 0;  // fallback
  std::array<std::uint64_t, sa::fallback_bins> sizes{};
  std::array<std::uint64_t, Classes::count> shard_allocs{}, shard_frees{};
  std::uint64_t retires = 0;
};

struct ClassTotals {  // one class, summed over the shards
  std::uint64_t allocations = 0, frees = 0, deferred = 0, reclaimed = 0, in_use = 0, cached = 0, slabs = 0;
};
std::array<ClassTotals, Classes::count> shard_totals(const sa::Stats& s) {
  std::array<ClassTotals, Classes::count> t{};
  for (const sa::ShardStats& st : s.shards.shards) {
    FUZZ_CHECK(st.classes.size() == Classes::count, "shard %u has %zu classes", st.index, st.classes.size());
    for (std::size_t c = 0; c < Classes::count; ++c) {
      const sa::ShardClassStats& k = st.classes[c];
      t[c].allocations += k.allocations;
      t[c].frees += k.frees;
      t[c].deferred += k.deferred;
      t[c].reclaimed += k.reclaimed;
      t[c].in_use += k.in_use;
      t[c].cached += k.cached;
      t[c].slabs += k.slabs;
    }
  }
  return t;
}
std::uint64_t pool_slabs(const sa::Stats& s) {
  std::uint64_t n = 0;
  for (const sa::ShardStats& st : s.shards.shards)
    for (const sa::ShardClassStats& k : st.classes) n += k.slabs;
  for (const sa::BucketStats& b : s.buckets) n += b.slabs;
  return n;
}

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
  explicit Model(Handle& h) : h_(h), base_(h_.snapshot_stats()) {
    const sa::Stats& s = base_;
    FUZZ_CHECK(s.fallback.blocks_live == 0 && s.fallback.bytes_live == 0,
               "handle not clean at input start: %llu fallback blocks, %llu bytes live", u64{s.fallback.blocks_live},
               u64{s.fallback.bytes_live});
    FUZZ_CHECK(s.shards.backlog == 0 && s.shards.in_transit == 0, "backlog %llu, in transit %llu at input start",
               u64{s.shards.backlog}, u64{s.shards.in_transit});
    FUZZ_CHECK(s.shards.retired_pending == 0, "%llu retired blocks pending at input start",
               u64{s.shards.retired_pending});
    FUZZ_CHECK(s.shards.pinned_threads == 0, "%llu threads pinned at input start", u64{s.shards.pinned_threads});
    const sa::LeakReport r = h_.leaks();
    FUZZ_CHECK(r == sa::LeakReport{}, "handle not clean at input start: %llu blocks, %llu bytes, underflow %d",
               u64{r.blocks}, u64{r.bytes}, r.underflow);
    base_shard_ = shard_totals(base_);
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

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
    count_alloc(b);
    std::memset(b.p, b.fill, b.len);
    live_.push_back(b);
  }

  void free(std::size_t i) {
    const Block b = take(i);
    erase_extent(b.p);
    h_.free(b.p, b.len, b.align);
    count_free(b);
  }

  void resize(std::size_t i, std::size_t new_len) {
    Block& b = live_[i];
    bool expect;
    if (!valid_request(new_len, b.align))
      expect = false;
    else if (b.kind != Kind::fallback)
      expect = model_class(new_len, b.align) == b.cls;
    else
      // Rule changed: a fallback block may shrink into the pooled range (and
      // back): frees route by pointer, not by length. SystemHeap resizes in
      // place iff the chunk holds the new length.
      expect = ::malloc_usable_size(b.p) >= new_len;
    const bool ok = h_.resize(b.p, b.len, b.align, new_len);
    FUZZ_CHECK(ok == expect, "resize(%p, %zu, %zu, %zu) of a %s block (class %u) returned %d", static_cast<void*>(b.p),
               b.len, b.align, new_len, kind_name(b.kind), b.cls, ok);
    TRACE_RESULT("%s\n", ok ? "in place" : "refused");
    if (!ok) return;
    const std::size_t old_len = b.len;
    if (b.kind == Kind::fallback) {
      ++exp_.resizes;
      erase_extent(b.p);
      b.len = new_len;
      insert_extent(b.p, extent_of(b), "resize");
    } else {
      b.len = new_len;
    }
    if (new_len > old_len) std::memset(b.p + old_len, b.fill, new_len - old_len);
    // Still where it was: a resized fallback block is no slab's.
    const Where w = classify(h_, b.p, "resize");
    FUZZ_CHECK(w.kind == b.kind && w.cls == b.cls, "resize moved block %p from the %s to the %s",
               static_cast<void*>(b.p), kind_name(b.kind), kind_name(w.kind));
  }

  void remap(std::size_t i, std::size_t new_len) {
    const Block old = live_[i];
    const std::size_t usable = old.kind == Kind::fallback ? ::malloc_usable_size(old.p) : 0;
    void* q = h_.remap(old.p, old.len, old.align, new_len);
    if (!valid_request(new_len, old.align)) {
      FUZZ_CHECK(q == nullptr, "remap(%p, %zu, %zu, %zu) of an invalid request returned %p",
                 static_cast<void*>(old.p), old.len, old.align, new_len, q);
      return;
    }
    const unsigned new_cls = model_class(new_len, old.align);
    const bool to_pool = new_cls != kNoClass;
    bool in_place = false;
    if (old.kind != Kind::fallback) {
      in_place = new_cls == old.cls;
      FUZZ_CHECK(q != nullptr, "remap of a pooled block (%zu -> %zu, align %zu) returned nullptr", old.len, new_len,
                 old.align);
      if (in_place)
        FUZZ_CHECK(q == old.p, "remap within class %u moved the block", old.cls);
      else
        FUZZ_CHECK(q != old.p, "remap of a pooled block across classes (%zu -> %zu, align %zu) stayed in place",
                   old.len, new_len, old.align);
    } else if (to_pool) {
      // A fallback block remapped to a poolable size moves into a pool, even
      // when its chunk would hold the new length.
      FUZZ_CHECK(q != nullptr && q != old.p, "remap of a fallback block into the pool (%zu -> %zu) returned %p",
                 old.len, new_len, q);
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
    if (q == nullptr) {
      TRACE_RESULT("nullptr\n");
      return;  // the old block must be intact: check_contents() says so
    }

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
    if (old.kind != Kind::fallback ? !in_place : to_pool) {
      // The handle moved it (alloc, copy, free): the new block is counted
      // as allocated where it landed, the old one as freed where it was. A
      // fallback-to-fallback remap is the fallback's own (one remap).
      count_alloc(nb);
      count_free(old);
    }
    TRACE_RESULT("%s, %s block (class size %zu)\n", in_place ? "in place" : "moved", kind_name(nb.kind),
                 nb.kind == Kind::fallback ? std::size_t{0} : class_size(nb.cls));
    nb.fill = next_fill();
    std::memset(nb.p, nb.fill, nb.len);
    live_[i] = nb;
  }

  void retire(std::size_t i) {
    // Every retired block must be intact right up to the free that reclaims it.
    check_pending_contents("before retire");
    const Block b = live_[i];
    const std::uint64_t cur = epoch();
    std::uint64_t want = cur;
    std::size_t reclaimed = 0;
    if (open_.size() == kBag) {
      // The bag is full: it is sealed at the current epoch, the epoch
      // advances once, and every sealed bag below the minimum pin is freed.
      seal_open(cur);
      want = next_epoch(cur);
      reclaimed = reclaim(safe_below());
      TRACE_RESULT("the bag was full: sealed at epoch %llu, epoch -> %llu, %zu blocks reclaimed\n", u64{cur}, u64{want},
                   reclaimed);
    }
    const bool ok = h_.retire(b.p, b.len, b.align);
    // False only if no retire bag could be allocated from the backing heap,
    // which does not happen here (ASan aborts on a failed malloc rather than
    // returning null), so any refusal is a bug.
    FUZZ_CHECK(ok, "retire of a %s block (len %zu, align %zu) returned false", kind_name(b.kind), b.len, b.align);
    ++exp_.retires;
    // Every kind alike: still allocated (extent kept, counted live, contents
    // untouched) until the bag it is in is reclaimed.
    open_.push_back(take(i));
    FUZZ_CHECK(epoch() == want, "epoch %llu after retire from %llu (%s), want %llu", u64{epoch()}, u64{cur},
               reclaimed != 0 || want != cur ? "sealed a full bag" : "no seal", u64{want});
  }

  // Pins nest: the first enter pins at the current epoch, inner ones return
  // the outer pin's epoch. Each pin is a plain enter/leave or a pin() guard.
  void enter(bool guard) {
    const std::uint64_t cur = epoch();
    const std::uint64_t want = pins_.empty() ? cur : pins_.front().epoch;
    Pin pin{want, std::nullopt};
    if (guard) {
      pin.guard.emplace(h_.pin());
      FUZZ_CHECK(static_cast<bool>(*pin.guard), "pin() returned an empty guard with shards running: %s",
                 pin.guard->why());
      FUZZ_CHECK(pin.guard->epoch() == want, "pin() at depth %zu pinned %llu, want %llu (epoch %llu)", pins_.size(),
                 u64{pin.guard->epoch()}, u64{want}, u64{cur});
    } else {
      const std::optional<std::uint64_t> e = h_.enter_epoch();
      FUZZ_CHECK(e.has_value(), "enter_epoch() returned no epoch with shards running");
      FUZZ_CHECK(*e == want, "enter_epoch() at depth %zu returned %llu, want %llu (epoch %llu)", pins_.size(),
                 u64{*e}, u64{want}, u64{cur});
    }
    pins_.push_back(std::move(pin));
  }
  void leave(bool guard_release) {
    Pin& pin = pins_.back();
    if (!pin.guard)
      h_.leave_epoch(pin.epoch);
    else if (guard_release)
      pin.guard->release();
    // else: the guard's destructor unpins, below.
    pins_.pop_back();
  }
  std::size_t pin_depth() const { return pins_.size(); }
  bool pinned() const { return !pins_.empty(); }

  void advance() {
    const std::uint64_t cur = epoch();
    const std::optional<std::uint64_t> e = h_.advance_epoch();
    const std::uint64_t want = next_epoch(cur);
    FUZZ_CHECK(e.has_value() && *e == want, "advance_epoch() from %llu (pin %lld) returned %lld, want %llu", u64{cur},
               pin_for_print(), e ? static_cast<long long>(*e) : -1LL, u64{want});
    FUZZ_CHECK(epoch() == want, "epoch %llu after advance, want %llu", u64{epoch()}, u64{want});
  }

  void collect() {
    check_pending_contents("before collect_garbage");
    const sa::Stats before = h_.snapshot_stats();
    const std::uint64_t cur = epoch();
    const std::size_t pending_before = pending_count();
    // collect_garbage() seals this thread's bag at the current epoch,
    // advances the epoch once, then frees every sealed bag stamped below the
    // minimum pin (ours is the only pin; the advance does not change it).
    if (!open_.empty()) seal_open(cur);
    const std::uint64_t want = next_epoch(cur);
    const std::size_t expect = reclaim(safe_below());
    const std::size_t got = h_.collect_garbage();
    TRACE_RESULT("returned %zu (model: %zu), epoch %llu -> %llu (model: %llu), %zu retired blocks pending\n", got,
                 expect, u64{cur}, u64{epoch()}, u64{want}, pending_count());
    const sa::Stats after = h_.snapshot_stats();
    // One thread: nothing is ever deferred to a shard, so nothing is moved.
    FUZZ_CHECK(after.shards.reclaimed_total == before.shards.reclaimed_total &&
                   after.shards.deferred_total == before.shards.deferred_total,
               "collect_garbage() moved shard blocks with one thread (deferred %llu -> %llu, reclaimed %llu -> %llu)",
               u64{before.shards.deferred_total}, u64{after.shards.deferred_total}, u64{before.shards.reclaimed_total},
               u64{after.shards.reclaimed_total});
    FUZZ_CHECK(got == expect,
               "collect_garbage() returned %zu, want %zu retired blocks reclaimed (%zu pending before, %zu after; "
               "epoch %llu, pin %lld)",
               got, expect, pending_before, pending_count(), u64{cur}, pin_for_print());
    FUZZ_CHECK(epoch() == want, "epoch %llu after collect_garbage from %llu (pin %lld), want %llu (one advance)",
               u64{epoch()}, u64{cur}, pin_for_print(), u64{want});
    if (!pinned())
      FUZZ_CHECK(pending_count() == 0, "%zu retired blocks kept by an unpinned collect_garbage", pending_count());
  }

  // keep: bytes of empty slabs to keep committed; nullopt = trim(), which
  // keeps the retain budget.
  void trim(std::optional<std::size_t> keep) {
    const sa::Stats before = h_.snapshot_stats();
    const std::uint64_t cur = epoch();
    const std::size_t got = keep ? h_.trim(*keep) : h_.trim();
    TRACE_RESULT("decommitted %zu bytes\n", got);
    const sa::Stats after = h_.snapshot_stats();
    const std::size_t k = (keep ? *keep : kRetain) / kSlab;  // slabs kept
    const sa::MemoryStats &mb = before.memory, &ma = after.memory;
    FUZZ_CHECK(ma.in_use_bytes <= mb.in_use_bytes, "trim took slabs: in use %llu -> %llu bytes", u64{mb.in_use_bytes},
               u64{ma.in_use_bytes});
    // The drain hands empty slabs to the pool; then retained slabs beyond
    // `keep` are decommitted, and only those.
    const std::uint64_t retained_mid = (mb.retained_bytes + mb.in_use_bytes - ma.in_use_bytes) / kSlab;
    const std::uint64_t want_retained = std::min<std::uint64_t>(retained_mid, k);
    FUZZ_CHECK(ma.retained_bytes == want_retained * kSlab,
               "trim(%zu) left %llu retained bytes, want %llu (%llu retained after the drain)", k * kSlab,
               u64{ma.retained_bytes}, u64{want_retained * kSlab}, u64{retained_mid * kSlab});
    FUZZ_CHECK(got == (retained_mid - want_retained) * kSlab, "trim(%zu) returned %zu, want %llu", k * kSlab, got,
               u64{(retained_mid - want_retained) * kSlab});
    // Then chunks with no slab in use or retained are released whole: what
    // leaves decommitted_bytes leaves the reservation with them (with the
    // chunk's never-used slabs), and only when a chunk went.
    const std::uint64_t gone_decommitted = mb.decommitted_bytes + got - ma.decommitted_bytes;
    FUZZ_CHECK(ma.decommits - mb.decommits == got / kSlab && ma.decommitted_bytes <= mb.decommitted_bytes + got,
               "trim decommitted %zu bytes: decommits %llu -> %llu, decommitted bytes %llu -> %llu", got,
               u64{mb.decommits}, u64{ma.decommits}, u64{mb.decommitted_bytes}, u64{ma.decommitted_bytes});
    FUZZ_CHECK(ma.reserved_bytes <= mb.reserved_bytes && mb.reserved_bytes - ma.reserved_bytes >= gone_decommitted &&
                   (ma.reserved_bytes == mb.reserved_bytes) == (ma.chunks_released == mb.chunks_released),
               "trim's chunk release: reservation %llu -> %llu, decommitted bytes gone %llu, chunks released %llu -> %llu",
               u64{mb.reserved_bytes}, u64{ma.reserved_bytes}, u64{gone_decommitted}, u64{mb.chunks_released},
               u64{ma.chunks_released});
    FUZZ_CHECK(epoch() == cur, "trim moved the epoch %llu -> %llu", u64{cur}, u64{epoch()});
    // Every free block is back in its slab and every empty slab in the pool:
    // the shards hold exactly the slabs that hold the model's blocks.
    const auto t = shard_totals(after);
    const auto occupied = occupied_slabs();
    for (std::size_t c = 0; c < Classes::count; ++c) {
      FUZZ_CHECK(t[c].cached == 0, "class %zu: %llu blocks still cached after trim", c, u64{t[c].cached});
      FUZZ_CHECK(t[c].slabs == occupied[c].size(), "class %zu: %llu slabs after trim, the model's blocks occupy %zu",
                 c, u64{t[c].slabs}, occupied[c].size());
      FUZZ_CHECK(after.buckets[c].cached == 0, "bucket class %zu: %llu blocks cached after trim", c,
                 u64{after.buckets[c].cached});
    }
  }

  // Ends the input: no pin, nothing live, nothing pending, nothing deferred.
  void finish() {
    while (pinned()) leave(false);
    while (!live_.empty()) free(live_.size() - 1);
    const std::size_t pending = pending_count();
    collect();
    FUZZ_CHECK(pending_count() == 0, "%zu retired blocks survived an unpinned collect_garbage (of %zu)",
               pending_count(), pending);
    FUZZ_CHECK(extents_.empty(), "%zu extents left in the model", extents_.size());
    check();
    const sa::LeakReport r = h_.leaks();
    FUZZ_CHECK(r == sa::LeakReport{}, "%llu blocks, %llu bytes live after freeing everything (underflow %d)",
               u64{r.blocks}, u64{r.bytes}, r.underflow);
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
  bool pending_full() const { return pending_count() >= kMaxPending; }

 private:
  struct Pin {
    std::uint64_t epoch;
    std::optional<sa::EpochGuard<Handle>> guard;  // empty: a plain enter_epoch()
  };

  std::uint64_t epoch() { return h_.shards().current_epoch(); }
  std::uint64_t safe_below() const { return pins_.empty() ? kNobody : pins_.front().epoch; }
  long long pin_for_print() const { return pins_.empty() ? -1LL : static_cast<long long>(pins_.front().epoch); }
  std::uint64_t next_epoch(std::uint64_t cur) const {
    // EpochDomain::advance: moves only when no pinned thread lags behind.
    return !pins_.empty() && pins_.front().epoch < cur ? cur : cur + 1;
  }

  std::size_t pending_count() const {
    std::size_t n = open_.size();
    for (const Bag& b : sealed_) n += b.blocks.size();
    return n;
  }
  template <class F>
  void for_each_pending(F f) const {
    for (const Block& b : open_) f(b, std::optional<std::uint64_t>{});
    for (const Bag& bag : sealed_)
      for (const Block& b : bag.blocks) f(b, std::optional<std::uint64_t>{bag.stamp});
  }
  void seal_open(std::uint64_t stamp) {
    sealed_.push_back(Bag{stamp, std::move(open_)});
    open_.clear();
  }
  // The model's side of a reclaim: sealed bags stamped below safe_below are
  // freed (through the handle's ordinary free). Returns the blocks freed.
  std::size_t reclaim(std::uint64_t below) {
    std::size_t n = 0;
    std::vector<Bag> keep;
    for (Bag& bag : sealed_) {
      if (bag.stamp >= below) {
        keep.push_back(std::move(bag));
        continue;
      }
      for (const Block& b : bag.blocks) {
        erase_extent(b.p);
        count_free(b);
      }
      n += bag.blocks.size();
    }
    sealed_ = std::move(keep);
    return n;
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

  void count_alloc(const Block& b) {
    if (b.kind == Kind::fallback) {
      ++exp_.allocs;
      ++exp_.sizes[sa::fallback_bin_of(b.len)];
    } else {
      ++exp_.shard_allocs[b.cls];
    }
  }
  void count_free(const Block& b) {
    if (b.kind == Kind::fallback)
      ++exp_.frees;
    else
      ++exp_.shard_frees[b.cls];
  }

  // Classifies a block just handed out, checks routing, alignment and overlap.
  void place(Block& b, const char* what) {
    const std::size_t a = norm(b.align);
    FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(b.p) % a == 0, "%s(%zu, %zu) returned %p, misaligned", what, b.len,
               b.align, static_cast<void*>(b.p));
    const Where w = classify(h_, b.p, what);
    b.kind = w.kind;
    b.cls = w.cls;
    const unsigned want = model_class(b.len, b.align);
    if (want != kNoClass) {
      // This thread holds one of the two shards, so a pooled request is its shard's.
      FUZZ_CHECK(b.kind == Kind::shard, "%s(%zu, %zu) was served by the %s, not this thread's shard", what, b.len,
                 b.align, kind_name(b.kind));
      FUZZ_CHECK(b.cls == want, "%s(%zu, %zu) got a block of class %u (size %zu), want class %u (size %zu)", what,
                 b.len, b.align, b.cls, class_size(b.cls), want, class_size(want));
    } else {
      FUZZ_CHECK(b.kind == Kind::fallback, "%s(%zu, %zu) was served by a %s slab", what, b.len, b.align,
                 kind_name(b.kind));
    }
    // A retired block stays allocated until the reclaim that frees it: in
    // particular one retired under our pin cannot come back before we leave
    // the pin and collect.
    const auto lo = reinterpret_cast<std::uintptr_t>(b.p);
    for_each_pending([&](const Block& r, std::optional<std::uint64_t> stamp) {
      const auto start = reinterpret_cast<std::uintptr_t>(r.p);
      FUZZ_CHECK(lo + extent_of(b) <= start || start + extent_of(r) <= lo,
                 "%s handed out %p (+%zu), overlapping the %s block %p (+%zu) retired into %s and not yet reclaimed "
                 "(pin %lld)",
                 what, static_cast<void*>(b.p), extent_of(b), kind_name(r.kind), static_cast<void*>(r.p), extent_of(r),
                 stamp ? "a sealed bag" : "the open bag", pin_for_print());
    });
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

  // Still where the model put it: the same slab class of this thread's shard
  // (its slab was not handed back to the pool while the block lives), or
  // still no slab's.
  void check_home(const Block& b, const char* what) {
    const Where w = classify(h_, b.p, what);
    FUZZ_CHECK(w.kind == b.kind && (b.kind == Kind::fallback || w.cls == b.cls),
               "%s block %p (class %u) is now in a %s slab of class %u", kind_name(b.kind), static_cast<void*>(b.p),
               b.cls, kind_name(w.kind), w.cls);
  }

  void check_contents() {
    for (const Block& b : live_) {
      FUZZ_CHECK(all_equal(b.p, b.len, b.fill), "%s block %p (len %zu, align %zu) changed at byte %zu (want 0x%02x)",
                 kind_name(b.kind), static_cast<void*>(b.p), b.len, b.align, first_mismatch(b.p, b.len, b.fill),
                 b.fill);
      check_home(b, "live block");
    }
    check_pending_contents("after the operation");
    for_each_pending([&](const Block& b, std::optional<std::uint64_t>) { check_home(b, "retired block"); });
  }
  // Retired blocks are neither written nor poisoned until they are freed
  // (readers may still follow pointers stored anywhere in them, the first 16
  // bytes included): every byte must still read its fill. A poisoned block
  // makes ASan report the read here.
  void check_pending_contents(const char* when) const {
    for_each_pending([&](const Block& b, std::optional<std::uint64_t> stamp) {
      if (all_equal(b.p, b.len, b.fill)) return;
      const std::size_t at = first_mismatch(b.p, b.len, b.fill);
      FUZZ_CHECK(at == b.len,
                 "retired %s block %p (len %zu, align %zu, %s %lld) changed at byte %zu (want 0x%02x, got 0x%02x) "
                 "%s, before the reclaim that frees it",
                 kind_name(b.kind), static_cast<void*>(b.p), b.len, b.align, stamp ? "sealed at" : "open bag, epoch",
                 stamp ? static_cast<long long>(*stamp) : -1LL, at, b.fill, at < b.len ? b.p[at] : 0, when);
    });
  }

  struct Tally {
    std::uint64_t blocks = 0, bytes = 0, fallback = 0, fallback_bytes = 0;
    std::array<std::uint64_t, Classes::count> shard{}, bucket{};
    void add(const Block& b) {
      ++blocks;
      bytes += extent_of(b);
      if (b.kind == Kind::fallback) {
        ++fallback;
        fallback_bytes += b.len;
      }
      if (b.kind == Kind::shard) ++shard[b.cls];
      if (b.kind == Kind::bucket) ++bucket[b.cls];
    }
  };
  Tally tally() const {
    Tally t;
    for (const Block& b : live_) t.add(b);
    for_each_pending([&t](const Block& b, std::optional<std::uint64_t>) { t.add(b); });  // still live to every counter
    return t;
  }
  // Per class, the distinct slabs that hold a live or pending shard block.
  std::array<std::set<std::uintptr_t>, Classes::count> occupied_slabs() const {
    std::array<std::set<std::uintptr_t>, Classes::count> s;
    auto add = [&s](const Block& b) {
      if (b.kind == Kind::shard) s[b.cls].insert(slab_of(b.p));
    };
    for (const Block& b : live_) add(b);
    for_each_pending([&add](const Block& b, std::optional<std::uint64_t>) { add(b); });
    return s;
  }

  void check_leaks() {
    const Tally t = tally();
    const sa::LeakReport r = h_.leaks();
    FUZZ_CHECK(r == (sa::LeakReport{t.blocks, t.bytes}),
               "leaks() = {%llu blocks, %llu bytes, underflow %d}, model {%llu, %llu} (%zu live, %zu retired pending)",
               u64{r.blocks}, u64{r.bytes}, r.underflow, u64{t.blocks}, u64{t.bytes}, live_.size(), pending_count());
  }

  void check_stats() {
    const Tally t = tally();
    const sa::Stats s = h_.snapshot_stats();
    FUZZ_CHECK(s.version == 2 && s.version == sa::Stats::current_version, "stats version %u", s.version);
    FUZZ_CHECK(s.mode == std::string_view("small_pool"), "stats mode %.*s", static_cast<int>(s.mode.size()),
               s.mode.data());
    FUZZ_CHECK(s.has_fallback && s.has_buckets && s.has_shards && s.has_memory, "has_* %d %d %d %d", s.has_fallback,
               s.has_buckets, s.has_shards, s.has_memory);
    FUZZ_CHECK(s.classes.size() == Classes::count && std::equal(s.classes.begin(), s.classes.end(), Classes::sizes.begin()),
               "stats classes (%zu) differ from the handle's table", s.classes.size());

    // ---- fallback ----
    const sa::FallbackStats& f = s.fallback;
    const sa::FallbackStats& f0 = base_.fallback;
    FUZZ_CHECK(f.allocs - f0.allocs == exp_.allocs, "fallback allocs +%llu, want +%llu", u64{f.allocs - f0.allocs},
               u64{exp_.allocs});
    FUZZ_CHECK(f.frees - f0.frees == exp_.frees, "fallback frees +%llu, want +%llu", u64{f.frees - f0.frees},
               u64{exp_.frees});
    FUZZ_CHECK(f.resizes - f0.resizes == exp_.resizes, "fallback resizes +%llu, want +%llu",
               u64{f.resizes - f0.resizes}, u64{exp_.resizes});
    FUZZ_CHECK(f.remaps - f0.remaps == exp_.remaps, "fallback remaps +%llu, want +%llu", u64{f.remaps - f0.remaps},
               u64{exp_.remaps});
    std::uint64_t binned = 0;
    for (std::size_t i = 0; i < sa::fallback_bins; ++i) {
      FUZZ_CHECK(f.sizes[i] - f0.sizes[i] == exp_.sizes[i], "fallback size bin %zu +%llu, want +%llu", i,
                 u64{f.sizes[i] - f0.sizes[i]}, u64{exp_.sizes[i]});
      binned += f.sizes[i];
    }
    FUZZ_CHECK(f.allocs == binned, "fallback allocs %llu, size bins sum to %llu", u64{f.allocs}, u64{binned});
    FUZZ_CHECK(f.blocks_live == t.fallback && f.allocs - f.frees == t.fallback,
               "fallback blocks_live %llu, allocs - frees %llu, model has %llu fallback blocks", u64{f.blocks_live},
               u64{f.allocs - f.frees}, u64{t.fallback});
    FUZZ_CHECK(f.bytes_live == t.fallback_bytes, "fallback bytes_live %llu, model %llu", u64{f.bytes_live},
               u64{t.fallback_bytes});
    FUZZ_CHECK(!f.counts_underflow, "fallback counts_underflow set");

    // ---- buckets: this thread has a shard, so no bucket traffic at all ----
    FUZZ_CHECK(s.buckets.size() == Classes::count, "%zu bucket entries", s.buckets.size());
    std::uint64_t bucket_allocs = 0;
    for (std::size_t c = 0; c < Classes::count; ++c) {
      const sa::BucketStats& b = s.buckets[c];
      const sa::BucketStats& b0 = base_.buckets[c];
      FUZZ_CHECK(b.size == class_size(static_cast<unsigned>(c)) && b.block_size == b.size, "bucket %zu size %u/%u", c,
                 b.size, b.block_size);
      FUZZ_CHECK(b.in_use == t.bucket[c], "bucket %zu in_use %llu, model %llu", c, u64{b.in_use}, u64{t.bucket[c]});
      FUZZ_CHECK(b.allocations == b0.allocations && b.frees == b0.frees && b.refills == b0.refills &&
                     b.flushes == b0.flushes && b.cached == b0.cached && b.slabs == b0.slabs,
                 "bucket %zu moved: allocations %llu -> %llu, frees %llu -> %llu, refills %llu -> %llu, flushes %llu "
                 "-> %llu, cached %llu -> %llu, slabs %llu -> %llu",
                 c, u64{b0.allocations}, u64{b.allocations}, u64{b0.frees}, u64{b.frees}, u64{b0.refills},
                 u64{b.refills}, u64{b0.flushes}, u64{b.flushes}, u64{b0.cached}, u64{b.cached}, u64{b0.slabs},
                 u64{b.slabs});
      if constexpr (Handle::Buckets::keeps_stats) {
        FUZZ_CHECK(b.allocations - b.frees == b.in_use, "bucket %zu: %llu allocations - %llu frees != in_use %llu", c,
                   u64{b.allocations}, u64{b.frees}, u64{b.in_use});
        FUZZ_CHECK(b.high_water >= b.in_use, "bucket %zu high_water %llu < in_use %llu", c, u64{b.high_water},
                   u64{b.in_use});
      }
      bucket_allocs += b.allocations;
    }

    // ---- shards ----
    const sa::ShardSummary& sh = s.shards;
    FUZZ_CHECK(sh.shard_count == kShards && sh.shards.size() == kShards, "shard_count %llu, %zu shard entries",
               u64{sh.shard_count}, sh.shards.size());
    FUZZ_CHECK(sh.alloc_misses == base_.shards.alloc_misses && sh.alloc_misses == bucket_allocs,
               "alloc_misses went from %llu to %llu (bucket allocations %llu)", u64{base_.shards.alloc_misses},
               u64{sh.alloc_misses}, u64{bucket_allocs});
    const auto tot = shard_totals(s);
    const auto occupied = occupied_slabs();
    for (std::size_t c = 0; c < Classes::count; ++c) {
      const ClassTotals& k = tot[c];
      const ClassTotals& k0 = base_shard_[c];
      FUZZ_CHECK(k.allocations - k0.allocations == exp_.shard_allocs[c], "shard class %zu allocations +%llu, want +%llu",
                 c, u64{k.allocations - k0.allocations}, u64{exp_.shard_allocs[c]});
      FUZZ_CHECK(k.frees - k0.frees == exp_.shard_frees[c], "shard class %zu frees +%llu, want +%llu", c,
                 u64{k.frees - k0.frees}, u64{exp_.shard_frees[c]});
      // One thread: every free is the owner's own, a reclaimed retire's
      // included, and retire() itself defers nothing.
      FUZZ_CHECK(k.deferred == k0.deferred && k.reclaimed == k0.reclaimed,
                 "shard class %zu: deferred %llu -> %llu, reclaimed %llu -> %llu with one thread", c, u64{k0.deferred},
                 u64{k.deferred}, u64{k0.reclaimed}, u64{k.reclaimed});
      FUZZ_CHECK(k.in_use == t.shard[c] && k.allocations - k.frees - k.deferred == k.in_use,
                 "shard class %zu in_use %llu (allocations %llu - frees %llu - deferred %llu), model %llu", c,
                 u64{k.in_use}, u64{k.allocations}, u64{k.frees}, u64{k.deferred}, u64{t.shard[c]});
      // The heads' blocks and the live ones are out of the slabs' lists; a
      // slab with none out goes back to the pool, but for a shard's current
      // slab of the class, which stays as its cache. A head holds at most
      // one slab's blocks.
      const std::uint64_t per_slab = kSlab / class_size(static_cast<unsigned>(c));
      FUZZ_CHECK(k.cached <= kShards * per_slab, "shard class %zu caches %llu blocks", c, u64{k.cached});
      const std::uint64_t out = k.in_use + k.cached;
      FUZZ_CHECK(k.slabs >= occupied[c].size() && k.slabs <= out + kShards && k.slabs * per_slab >= out,
                 "shard class %zu: %llu slabs for %llu live and %llu cached blocks (the model's occupy %zu slabs)", c,
                 u64{k.slabs}, u64{k.in_use}, u64{k.cached}, occupied[c].size());
    }
    std::uint64_t hits = 0, backlog = 0, deferred = 0, reclaimed = 0, owned = 0;
    for (const sa::ShardStats& st : sh.shards) {
      std::uint64_t st_hits = 0, st_backlog = 0, st_slabs = 0;
      for (std::size_t c = 0; c < Classes::count; ++c) {
        const sa::ShardClassStats& k = st.classes[c];
        FUZZ_CHECK(k.size == class_size(static_cast<unsigned>(c)), "shard class %zu size %u", c, k.size);
        FUZZ_CHECK(k.reclaimed <= k.deferred, "shard %u class %zu: reclaimed %llu > deferred %llu", st.index, c,
                   u64{k.reclaimed}, u64{k.deferred});
        st_hits += k.allocations;
        st_backlog += k.deferred - k.reclaimed;
        st_slabs += k.slabs;
        deferred += k.deferred;
        reclaimed += k.reclaimed;
      }
      FUZZ_CHECK(st.alloc_hits == st_hits && st.backlog == st_backlog && st.reserved_bytes == st_slabs * kSlab,
                 "shard %u: hits %llu/%llu backlog %llu/%llu reserved %llu for %llu slabs", st.index, u64{st.alloc_hits},
                 u64{st_hits}, u64{st.backlog}, u64{st_backlog}, u64{st.reserved_bytes}, u64{st_slabs});
      hits += st_hits;
      backlog += st_backlog;
      owned += st.owned;
    }
    FUZZ_CHECK(owned <= 1 && (g_my_shard == nullptr || owned == 1), "%llu shards owned (this thread's: %p)", u64{owned},
               g_my_shard);
    FUZZ_CHECK(sh.alloc_hits == hits && sh.backlog == backlog && sh.deferred_total == deferred &&
                   sh.reclaimed_total == reclaimed,
               "shard summary: hits %llu/%llu backlog %llu/%llu deferred %llu/%llu reclaimed %llu/%llu",
               u64{sh.alloc_hits}, u64{hits}, u64{sh.backlog}, u64{backlog}, u64{sh.deferred_total}, u64{deferred},
               u64{sh.reclaimed_total}, u64{reclaimed});
    FUZZ_CHECK(backlog == 0 && sh.in_transit == 0, "backlog %llu, in transit %llu with one thread", u64{backlog},
               u64{sh.in_transit});
    FUZZ_CHECK(sh.retired - base_.shards.retired == exp_.retires && sh.retired_pending == pending_count(),
               "retired +%llu (want +%llu), retired_pending %llu (model %zu: %zu in the open bag, %zu sealed bags)",
               u64{sh.retired - base_.shards.retired}, u64{exp_.retires}, u64{sh.retired_pending}, pending_count(),
               open_.size(), sealed_.size());

    // ---- epochs ----
    FUZZ_CHECK(sh.current_epoch == epoch(), "stats epoch %llu, handle %llu", u64{sh.current_epoch}, u64{epoch()});
    FUZZ_CHECK(sh.pinned_threads == (pinned() ? 1u : 0u), "pinned_threads %llu, pin depth %zu", u64{sh.pinned_threads},
               pins_.size());
    FUZZ_CHECK(sh.min_pinned_epoch == (pinned() ? pins_.front().epoch : 0), "min_pinned_epoch %llu, pin %lld",
               u64{sh.min_pinned_epoch}, pin_for_print());

    // ---- the pool's memory ----
    const sa::MemoryStats& m = s.memory;
    FUZZ_CHECK(m.in_use_bytes == pool_slabs(s) * kSlab, "memory in_use %llu bytes, the layers hold %llu slabs",
               u64{m.in_use_bytes}, u64{pool_slabs(s)});
    FUZZ_CHECK(m.committed_bytes == m.in_use_bytes + m.retained_bytes &&
                   m.reserved_bytes >= m.committed_bytes + m.decommitted_bytes,
               "memory: reserved %llu, committed %llu, in use %llu, retained %llu, decommitted %llu",
               u64{m.reserved_bytes}, u64{m.committed_bytes}, u64{m.in_use_bytes}, u64{m.retained_bytes},
               u64{m.decommitted_bytes});
    FUZZ_CHECK(m.retain_budget_bytes == kRetain, "retain budget %llu", u64{m.retain_budget_bytes});
    // chunks only grows; the chunks held are those not released since (an
    // out-of-memory retry or trim() gives empty ones back whole).
    FUZZ_CHECK(m.chunks_released <= m.chunks, "memory: %llu chunks released of %llu", u64{m.chunks_released},
               u64{m.chunks});
    FUZZ_CHECK((m.reserved_bytes == 0) == (m.chunks == m.chunks_released) && m.reserved_bytes % kSlab == 0,
               "memory: %llu chunks, %llu released, %llu bytes reserved", u64{m.chunks}, u64{m.chunks_released},
               u64{m.reserved_bytes});
  }

  Handle& h_;
  const sa::Stats base_;
  std::array<ClassTotals, Classes::count> base_shard_{};
  Counters exp_;
  std::vector<Block> live_;
  std::vector<Block> open_;   // retired into this thread's open bag (no stamp yet)
  std::vector<Bag> sealed_;   // sealed bags not yet reclaimed, any kind of block
  std::map<std::uintptr_t, std::size_t> extents_;  // live + pending blocks, by address
  std::vector<Pin> pins_;     // outermost first
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
  if (s < 248) return class_size(v % Classes::count) - 1 + (v >> 8) % 3;
  const std::size_t a = norm(align);
  const auto max = static_cast<std::size_t>(PTRDIFF_MAX);
  switch (v % 4) {
    case 0: return SIZE_MAX;
    case 1: return max + 1;
    case 2: return std::has_single_bit(a) ? max - (a - 1) + 1 : max;
    default: return SIZE_MAX - (v >> 2);
  }
}

// Alignment 16, pooled lengths: mostly 1..48 (17..24 skip the 24 class),
// else anything up to the largest class.
std::size_t draw_len16(Reader& r) {
  const std::uint8_t s = r.u8();
  if (s < 160) return 1 + s % 48;
  return 1 + r.u8() % Classes::max_size;
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

void alloc_or_free(Model& m, std::size_t len, std::size_t align) {
  if (m.live_count() >= kMaxLive) {
    const std::size_t k = m.pick(static_cast<std::uint8_t>(len));
    TRACE("free #%zu (len %zu, align %zu; at the cap)\n", k, m.len_of(k), m.align_of(k));
    m.free(k);
  } else {
    TRACE("alloc(%zu, %zu)\n", len, align);
    m.alloc(len, align);
  }
}

void run_one(Reader& r) {
  Handle& h = handle();
  Model m(h);
  m.check();
  while (!r.empty()) {
    const unsigned op = r.u8() % 24;
    switch (op) {
      case 0: case 1: case 2: case 3: case 4: case 5: {  // alloc(align, len)
        const std::size_t align = draw_align(r);
        const std::size_t len = draw_len(r, align);
        alloc_or_free(m, len, align);
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
      case 16: {  // pin(how): enter, nest, or leave; a plain pin or a pin() guard
        const std::uint8_t b = r.u8();
        const bool guard = (b & 1) != 0;
        if (!m.pinned() || (m.pin_depth() < 3 && (b & 6) == 6)) {
          TRACE("%s%s\n", m.pinned() ? "nested " : "", guard ? "pin()" : "enter_epoch");
          m.enter(guard);
        } else {
          TRACE("leave (depth %zu%s)\n", m.pin_depth(), (b & 8) != 0 ? ", guard.release()" : "");
          m.leave((b & 8) != 0);
        }
        break;
      }
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
      case 20: {  // alloc(len, 16)
        const std::size_t len = draw_len16(r);
        alloc_or_free(m, len, 16);
        break;
      }
      case 21: {  // trim(keep)
        static constexpr std::size_t keeps[8] = {0, 1, kSlab - 1, kSlab, 2 * kSlab, 3 * kSlab, 16 * kSlab, 0};
        const std::uint8_t b = r.u8() % 8;
        const std::optional<std::size_t> keep = b == 7 ? std::nullopt : std::optional<std::size_t>(keeps[b]);
        if (keep)
          TRACE("trim(%zu)\n", *keep);
        else
          TRACE("trim()\n");
        m.trim(keep);
        break;
      }
      case 22: {  // a burst of allocations of one request
        const unsigned count = 1 + r.u8() % 32;
        const std::size_t align = draw_align(r);
        const std::size_t len = draw_len(r, align);
        TRACE("burst of %u x alloc(%zu, %zu)\n", count, len, align);
        for (unsigned k = 0; k < count && m.live_count() < kMaxLive; ++k) m.alloc(len, align);
        break;
      }
      case 23: {  // a burst of retires
        const unsigned count = 1 + r.u8() % 64;
        TRACE("burst of %u retires\n", count);
        for (unsigned k = 0; k < count && m.live_count() != 0 && !m.pending_full(); ++k) {
          TRACE("retire #%zu (len %zu, align %zu)\n", m.live_count() - 1, m.len_of(m.live_count() - 1),
                m.align_of(m.live_count() - 1));
          m.retire(m.live_count() - 1);
        }
        break;
      }
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
