// BucketPolicy implementations.
//
// NoBuckets: no pool; every request the shards do not serve goes to the fallback.
// MutexBuckets: the seed's bucket allocator, one bucket per size class, each
// with its own lock, a free list, and a bump region carved lazily from the
// current 64 KiB slab. A free finds its bucket through the slab header
// (Pagemap), so it takes exactly one lock: the seed scanned every bucket.
#pragma once

#include <sydra/alloc/mixin/lock_timing.hpp>
#include <sydra/alloc/mixin/stats.hpp>
#include <sydra/alloc/policy/audited.hpp>
#include <sydra/alloc/policy/pool_options.hpp>
#include <sydra/alloc/slab/slab.hpp>

#include <array>
#include <mutex>

namespace sydra::alloc {
inline namespace v1 {

struct NoBuckets {
  static constexpr bool enabled = false;
  constexpr NoBuckets() noexcept = default;
  template <class Source>
  constexpr NoBuckets(Source&, const PoolOptions&) noexcept {}
};

template <class Lock = std::conditional_t<lock_timing_enabled, TimedLock<>, PlainLock<>>>
class MutexBuckets {
 public:
  static constexpr bool enabled = true;
  using LockType = Lock;

 private:
  struct Bucket;

 public:

  MutexBuckets(SlabSource& slabs, const PoolOptions& options) noexcept : slabs_(slabs) {
    for (Bucket& b : buckets_) b.lock.configure(options.lock_timing);
  }
  MutexBuckets(const MutexBuckets&) = delete;
  MutexBuckets& operator=(const MutexBuckets&) = delete;
  ~MutexBuckets() {
    for (Bucket& b : buckets_) {
      for (SlabHeader* s = b.slabs; s != nullptr;) {
        SlabHeader* next = s->next_slab;
        slabs_.release(s);
        s = next;
      }
    }
  }

  // The bucket path: one lock round trip. nullptr only when a refill fails.
  void* alloc(unsigned cls) noexcept {
    Bucket& b = buckets_[cls];
    std::lock_guard guard(b.lock);
    FreeNode* n = b.free;
    if (SYDRA_LIKELY(n != nullptr)) {
      b.free = load_next(n);
    } else {
      n = carve(b, cls);
      if (n == nullptr) return nullptr;
    }
    b.allocations.bump();
    b.in_use.bump();
    if (b.in_use.get() > b.high_water.get()) b.high_water.set(b.in_use.get());
    track::on_hand_out(n, size_classes[cls]);
    return n;
  }

  void free(SlabHeader* slab, void* mem) noexcept { push(*static_cast<Bucket*>(slab->owner), slab->size_class, mem); }

  // A sized free whose class the caller trusts: no slab header needed.
  void free_class(unsigned cls, void* mem) noexcept { push(buckets_[cls], cls, mem); }

 private:
  void push(Bucket& b, unsigned cls, void* mem) noexcept {
    auto* n = static_cast<FreeNode*>(mem);
    track::on_take_back(n, size_classes[cls]);
    std::lock_guard guard(b.lock);
    store_next(n, b.free);
    b.free = n;
    b.frees.bump();
    b.in_use.drop();
  }

 public:
  void collect_stats(Stats& out) noexcept {
    out.has_buckets = true;
    for (std::size_t i = 0; i < class_count; ++i) {
      Bucket& b = buckets_[i];
      BucketStats& s = out.buckets[i];
      b.lock.lock_quietly();  // counters move together under the lock: never torn
      s.size = size_classes[i];
      s.block_size = size_classes[i];
      s.allocations = b.allocations.get();
      s.frees = b.frees.get();
      s.refills = b.refills.get();
      s.in_use = b.in_use.get();
      s.high_water = b.high_water.get();
      s.slabs = b.slab_count.get();
      s.free_blocks = b.capacity.get() - b.in_use.get();
      if constexpr (Lock::timed) s.lock = b.lock.stats();
      b.lock.unlock_quietly();
    }
  }

  LeakReport live() noexcept {
    LeakReport r;
    for (std::size_t i = 0; i < class_count; ++i) {
      Bucket& b = buckets_[i];
      b.lock.lock_quietly();
      r.blocks += b.in_use.get();
      r.bytes += b.in_use.get() * size_classes[i];
      b.lock.unlock_quietly();
    }
    return r;
  }

 private:
  // Hot fields first: the free list and the per-operation counters share the
  // lock's cache line, and a TimedLock's own counters follow them.
  struct alignas(64) Bucket {
    FreeNode* free = nullptr;
    char* bump = nullptr;  // next never-used block of the newest slab
    char* bump_end = nullptr;
    // Written under the lock; atomics only so snapshots and tests read whole values.
    Counter<true> in_use;  // always kept: leak reports need it
    Counter<> allocations, frees, high_water;
    Lock lock;
    SlabHeader* slabs = nullptr;
    Counter<true> capacity;
    Counter<> refills, slab_count;
  };

  // Carves the next block from the bump region, refilling it from a new slab
  // when empty. Under the bucket lock.
  SYDRA_SLOW_PATH FreeNode* carve(Bucket& b, unsigned cls) noexcept {
    if (b.bump == b.bump_end) {
      SlabHeader* s = slabs_.acquire(SlabKind::bucket, cls, &b);
      if (s == nullptr) return nullptr;  // the lock is released by the caller's guard
      s->next_slab = b.slabs;
      b.slabs = s;
      b.bump = s->first_block();
      b.bump_end = s->end();
      b.refills.bump();
      b.slab_count.bump();
      b.capacity.bump(s->capacity);
    }
    auto* n = reinterpret_cast<FreeNode*>(b.bump);
    b.bump += size_classes[cls];
    return n;
  }

  SlabSource& slabs_;
  std::array<Bucket, class_count> buckets_;
};

}  // namespace v1
}  // namespace sydra::alloc
