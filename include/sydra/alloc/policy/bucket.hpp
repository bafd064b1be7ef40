// BucketPolicy implementations: the layer that serves threads without a shard.
//
// NoBuckets: no pool; what the shards do not serve goes to the fallback.
// MutexBuckets<Lock, Features>: the seed's bucket allocator, one bucket per
// size class, each with its own lock, in front of which sits one small cache
// per CPU per class (cache/cpu_caches.hpp). A thread takes blocks from its
// CPU's cache with no lock; when that runs dry or overflows, half a cache
// moves to or from the bucket in one lock round trip. The bucket keeps a
// short transfer stack of free blocks (so caches trading blocks do not touch
// slab lists) and the class's slabs (slab/class_slabs.hpp), which go back to
// the pool as soon as they are empty.
//
// A free finds its bucket in O(1): the slab's metadata names it.
#pragma once

#include <sydra/alloc/cache/cpu_caches.hpp>
#include <sydra/alloc/detail/count_and_pops.hpp>
#include <sydra/alloc/mixin/lock_timing.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/heap/audited.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/slab/class_slabs.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <mutex>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// What a bucket lock must offer. PlainLock and TimedLock do; wrap any other
// mutex in PlainLock<YourMutex>.
template <class L>
concept BucketLock = std::default_initializable<L> && requires(L& l, const TimedLockConfig& c) {
  { L::timed } -> std::convertible_to<bool>;
  l.configure(c);
  l.lock();
  l.unlock();
  l.lock_quietly();
  l.unlock_quietly();
};

struct BucketFeatures {
  bool stats = true;  // per-class counters and lock stats in snapshot_stats()
};

struct NoBuckets {
  static constexpr bool enabled = false;
  template <class Ctx>
  struct Layer {
    static constexpr bool enabled = false;
    constexpr Layer(typename Ctx::Pool&, const PoolOptions&) noexcept {}
  };
};

template <class Ctx, class Lock, BucketFeatures Features>
class BucketLayer {
 public:
  static constexpr bool enabled = true;
  static constexpr bool keeps_stats = Features.stats;
  using Classes = typename Ctx::Classes;
  using Pool = typename Ctx::Pool;
  using LockType = Lock;

  BucketLayer(Pool& pool, const PoolOptions& options) noexcept : pool_(pool), caches_(options.cpu_cache) {
    for (unsigned c = 0; c < Classes::count; ++c) {
      buckets_[c].lock.configure(options.lock_timing);
      batch_[c] = std::max<std::uint32_t>(1, caches_.capacity(c) / 2);
      xfer_limit_[c] = static_cast<std::uint32_t>(cache_blocks(Classes::sizes[c], xfer_bytes, 4, xfer_capacity, xfer_bytes));
    }
  }
  BucketLayer(const BucketLayer&) = delete;
  BucketLayer& operator=(const BucketLayer&) = delete;

  // ---- The fast path: this CPU's cache, no lock --------------------------------
  // A pop, and no call: nullptr sends the caller to its slow path.
  SYDRA_FAST_PATH void* alloc_fast(unsigned cls) noexcept {
    const std::uintptr_t r = caches_.pop(cls);
    if (SYDRA_LIKELY(r > pal::pop_no_cpu)) return hand_out(reinterpret_cast<void*>(r), cls);
    return nullptr;
  }
  // A push; the slow path (cache full, no CPU cache) is a tail call.
  SYDRA_FAST_PATH void free(SlabMeta* m, void* p) noexcept { free_class(m->size_class, p); }
  // `cls` checked against the slab by the caller (the handle takes it from
  // the caller's length, whose table lookup does not wait for the slab's).
  SYDRA_FAST_PATH void free_class(unsigned cls, void* p) noexcept {
    track::on_take_back(p, Classes::sizes[cls]);
    const pal::Push r = caches_.push(cls, p);
    if (SYDRA_LIKELY(r == pal::Push::done)) return;
    free_slow(cls, p, r == pal::Push::no_cpu);
  }
  // ---- End of the fast path ----------------------------------------------------

  // The whole of an allocation; nullptr only when out of memory.
  SYDRA_SLOW_PATH void* alloc(unsigned cls) noexcept {
    const std::uintptr_t r = caches_.pop(cls);
    if (SYDRA_LIKELY(r > pal::pop_no_cpu)) return hand_out(reinterpret_cast<void*>(r), cls);
    return alloc_slow(cls, r == pal::pop_no_cpu);
  }

  // Gives every cached block back to its slab, so that empty slabs reach the
  // pool: each CPU's cache (this thread visits each CPU in turn; locked mode
  // takes each cache's lock), then each bucket's transfer stack.
  void drain() noexcept {
    if (caches_.locked_mode()) {
      for (unsigned cpu = 0; cpu < caches_.cpus(); ++cpu) {
        std::lock_guard g(caches_.lock_of(cpu));
        for (unsigned c = 0; c < Classes::count; ++c) drain_stack(*caches_.stack(cpu, c), c);
      }
    } else {
      pal::run_on_each_cpu(
          [](void* self, unsigned) {
            auto* me = static_cast<BucketLayer*>(self);
            for (unsigned c = 0; c < Classes::count; ++c) {
              void* got[pal::CpuStack::max_capacity > 256 ? 256 : pal::CpuStack::max_capacity];
              unsigned n = 0;
              for (std::uintptr_t r; n < 256 && (r = me->caches_.template pop<false>(c)) > pal::pop_no_cpu;)
                got[n++] = reinterpret_cast<void*>(r);
              if (n != 0) me->give_back(c, got, n, /*to_slabs=*/true);
            }
          },
          this);
    }
    for (unsigned c = 0; c < Classes::count; ++c) {
      Bucket& b = buckets_[c];
      std::lock_guard g(b.lock);
      while (b.xfer_count != 0) {
        void* p = b.xfer[--b.xfer_count];
        b.slabs.give(pool_, Pagemap::lookup(p), p);
      }
    }
  }

  void collect_stats(Stats& out) noexcept
    requires(Features.stats)
  {
    out.has_buckets = true;
    out.buckets.resize(Classes::count);
    for (unsigned c = 0; c < Classes::count; ++c) {
      BucketStats& s = out.buckets[c];
      s.size = s.block_size = Classes::sizes[c];
      const Totals t = totals(c);
      s.allocations = t.allocs;
      s.frees = t.frees;
      s.in_use = t.allocs - t.frees;
      s.cached = t.cached;
      Bucket& b = buckets_[c];
      b.lock.lock_quietly();  // bucket counters move together under the lock: never torn
      s.refills = b.refills.get();
      s.flushes = b.flushes.get();
      s.cached += b.xfer_count;
      s.slabs = b.slabs.slabs();
      const std::uint64_t capacity = s.slabs * Classes::blocks_per_slab(c);
      s.free_blocks = capacity > s.in_use ? capacity - s.in_use : 0;
      if (s.in_use > b.high_water.get()) b.high_water.set(s.in_use);
      s.high_water = b.high_water.get();
      if constexpr (Lock::timed) s.lock = b.lock.stats();
      b.lock.unlock_quietly();
    }
  }

  // fork(): the CPU caches' locks, then every class's (the order a flush
  // takes them in).
  void fork_lock() noexcept {
    caches_.fork_lock();
    for (unsigned c = 0; c < Classes::count; ++c) buckets_[c].lock.lock_quietly();
  }
  void fork_unlock() noexcept {
    for (unsigned c = Classes::count; c-- > 0;) buckets_[c].lock.unlock_quietly();
    caches_.fork_unlock();
  }

  LeakReport live() noexcept
    requires(Features.stats)
  {
    LeakReport r;
    for (unsigned c = 0; c < Classes::count; ++c) {
      const Totals t = totals(c);
      r += LeakReport::difference(t.allocs, t.frees, t.allocs * Classes::sizes[c], t.frees * Classes::sizes[c]);
    }
    return r;
  }

 private:
  static constexpr std::uint32_t xfer_capacity = 128;
  // A transfer stack holds at most this many bytes of a large class (128
  // blocks up to 4 KiB, 8 of 64 KiB): trim() drains it, nothing else does.
  static constexpr std::size_t xfer_bytes = 512 * 1024;

  // Hot fields first: the lock and the transfer stack's count share a line.
  struct alignas(64) Bucket {
    Lock lock;
    std::uint32_t xfer_count = 0;
    ClassSlabs<Ctx::hardened> slabs;
    Counter<Features.stats> direct_allocs, direct_frees, refills, flushes, high_water;
    void* xfer[xfer_capacity];
  };

  struct Totals {
    std::uint64_t allocs = 0, frees = 0, cached = 0;
  };
  // Frees are read before allocations, so in_use is never negative: a
  // counted free is published after the counted allocation of its block.
  Totals totals(unsigned c) const noexcept {
    Totals t;
    const Bucket& b = buckets_[c];
    t.frees = b.direct_frees.get();
    caches_.for_each_stack(c, [&t](const pal::CpuStack& s) { t.frees += s.frees.load(std::memory_order_acquire); });
    t.allocs = b.direct_allocs.get();
    caches_.for_each_stack(c, [&t](const pal::CpuStack& s) {
      const detail::CountAndPops w = s.word.load(std::memory_order_acquire);
      t.allocs += w.pops();
      t.cached += w.count();
    });
    if (t.allocs < t.frees) t.allocs = t.frees;  // unreachable by the argument above; never report a wrap
    return t;
  }

  SYDRA_FAST_PATH void* hand_out(void* p, unsigned cls) noexcept {
    track::on_hand_out(p, Classes::sizes[cls]);
    return p;
  }

  // Under the bucket's lock: up to n free blocks, transfer stack first.
  unsigned take(Bucket& b, unsigned cls, unsigned n, void** out) noexcept {
    unsigned got = 0;
    while (got < n && b.xfer_count != 0) out[got++] = b.xfer[--b.xfer_count];
    if (got < n) {
      got += b.slabs.take(pool_, SlabIdentity{SlabKind::bucket, &b, cls, Classes::sizes[cls]}, n - got,
                          out + got);
    }
    return got;
  }
  // Under the bucket's lock: free blocks back, transfer stack first unless
  // the caller wants them in their slabs.
  void put(Bucket& b, unsigned cls, void* p, bool to_slabs) noexcept {
    if (!to_slabs && b.xfer_count < xfer_limit_[cls]) {
      b.xfer[b.xfer_count++] = p;
      return;
    }
    b.slabs.give(pool_, Pagemap::lookup(p), p);
  }
  void give_back(unsigned cls, void** blocks, unsigned n, bool to_slabs) noexcept {
    Bucket& b = buckets_[cls];
    std::lock_guard g(b.lock);
    for (unsigned i = 0; i < n; ++i) put(b, cls, blocks[i], to_slabs);
  }
  void note_high_water(Bucket& b, unsigned cls) noexcept {
    if constexpr (Features.stats) {
      const Totals t = totals(cls);
      if (t.allocs - t.frees > b.high_water.get()) b.high_water.set(t.allocs - t.frees);
    }
  }

  // The cache was empty (refill it from the bucket and hand out one block), or
  // this thread has no CPU cache (locked mode, or straight to the bucket).
  SYDRA_SLOW_PATH void* alloc_slow(unsigned cls, bool no_cpu) noexcept {
    pool_.tick();  // no lock held yet: the retention policy's decommits may run
    Bucket& b = buckets_[cls];
    if (no_cpu && caches_.locked_mode()) {
      typename CpuCaches<Classes>::Locked cache(caches_, cls);
      if (void* p = cache.pop(true)) return hand_out(p, cls);
      return refill(b, cls, [&cache](void* p) { return cache.push(p, false); });
    }
    if (no_cpu) {
      void* p = nullptr;
      std::lock_guard g(b.lock);
      if (take(b, cls, 1, &p) == 0) return nullptr;
      b.direct_allocs.bump();
      return hand_out(p, cls);
    }
    return refill(b, cls, [this, cls](void* p) { return caches_.template push<false>(cls, p) == pal::Push::done; });
  }

  // One lock round trip: half a cache's worth of blocks from the bucket, all
  // but one pushed into the cache (uncounted: they are not frees), the last
  // handed out (counted here: it never passed through the cache).
  template <class PushFn>
  void* refill(Bucket& b, unsigned cls, PushFn push) noexcept {
    void* got[pal::CpuStack::max_capacity > 256 ? 256 : pal::CpuStack::max_capacity];
    std::lock_guard g(b.lock);
    const unsigned n = take(b, cls, std::min<std::uint32_t>(batch_[cls], 256), got);
    if (n == 0) return nullptr;  // out of memory; the lock is released by the guard
    unsigned i = 1;
    while (i < n && push(got[i])) ++i;
    for (; i < n; ++i) put(b, cls, got[i], false);  // the cache filled meanwhile (another thread, same CPU)
    b.direct_allocs.bump();
    b.refills.bump();
    note_high_water(b, cls);
    return hand_out(got[0], cls);
  }

  SYDRA_SLOW_PATH void free_slow(unsigned cls, void* p, bool no_cpu) noexcept {
    Bucket& b = buckets_[cls];
    if (no_cpu && caches_.locked_mode()) {
      typename CpuCaches<Classes>::Locked cache(caches_, cls);
      if (cache.push(p, true)) return;
      flush(b, cls, [&cache]() -> void* { return cache.pop(false); }, p);
      return;
    }
    if (no_cpu) {
      std::lock_guard g(b.lock);
      put(b, cls, p, false);
      b.direct_frees.bump();
      return;
    }
    flush(b, cls, [this, cls]() -> void* {
      const std::uintptr_t r = caches_.template pop<false>(cls);
      return r > pal::pop_no_cpu ? reinterpret_cast<void*>(r) : nullptr;
    }, p);
  }

  // The cache is full: half of it, and the block being freed (counted here),
  // go back to the bucket in one lock round trip.
  template <class PopFn>
  void flush(Bucket& b, unsigned cls, PopFn pop, void* p) noexcept {
    void* got[pal::CpuStack::max_capacity > 256 ? 256 : pal::CpuStack::max_capacity];
    unsigned n = 0;
    const std::uint32_t want = std::min<std::uint32_t>(batch_[cls], 256);
    while (n < want) {
      void* q = pop();
      if (q == nullptr) break;
      got[n++] = q;
    }
    std::lock_guard g(b.lock);
    for (unsigned i = 0; i < n; ++i) put(b, cls, got[i], false);
    put(b, cls, p, false);
    b.direct_frees.bump();
    b.flushes.bump();
    note_high_water(b, cls);
  }

  void drain_stack(pal::CpuStack& s, unsigned cls) noexcept {  // locked mode, under the cache's lock
    const detail::CountAndPops w = s.word.load(std::memory_order_relaxed);
    const std::uint32_t n = w.count();
    if (n == 0) return;
    give_back(cls, s.slots(), n, /*to_slabs=*/true);
    s.word.store(w.after_take(n), std::memory_order_release);
  }

  Pool& pool_;
  CpuCaches<Classes> caches_;
  std::array<std::uint32_t, Classes::count> batch_{};
  std::array<std::uint32_t, Classes::count> xfer_limit_{};
  std::array<Bucket, Classes::count> buckets_;
};

template <class Lock = TimedLock<>, BucketFeatures Features = BucketFeatures{}>
struct MutexBuckets {
  static_assert(BucketLock<Lock>,
                "MutexBuckets<Lock>: Lock must be PlainLock<Mutex> (no timing) or TimedLock<Mutex> (wait and hold "
                "times); for std::mutex write MutexBuckets<PlainLock<std::mutex>>");
  static constexpr bool enabled = true;
  using LockType = Lock;
  template <class Ctx>
  using Layer = BucketLayer<Ctx, Lock, Features>;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
