// SlabPool: every slab a handle uses, from reservation to decommit.
//
//   chunk     a region of address space from the RegionSource (4 MiB first,
//             doubling up to max_chunk_bytes), cut into 64 KiB slabs
//             (slab/chunks.hpp)
//   fresh     a slab never handed out: address space only, nothing committed
//   in use    owned by one class of one bucket or shard
//   retained  empty, committed, kept for the next owner of any class
//   decommitted  empty, its memory returned to the OS, its range still reserved
//
// An owner returns a slab the moment its last block comes back (its `used`
// count reaches zero), so memory follows the workload: the slabs of a spike
// of 16-byte rows serve the 128-byte buffers that come after it. Retention
// policy: empty slabs beyond `retain_bytes` are decommitted once they have
// been empty for `decommit_delay_ms`, and at once by trim(). Who notices the
// delay has passed: this pool's own refills and collect_garbage() (tick()),
// and, through the process-wide idle registry (slab/idle_return.hpp), the
// slow paths of every other handle, any thread's exit and the opt-in
// background thread, so that a handle nobody calls again still gives its
// surplus back. The newest empty slab is reused first (its cache lines are
// warm); the oldest is decommitted first.
//
// A chunk whose slabs are all empty (none owned by any class, so no block of
// it is live, cached, deferred or retired: each of those counts in `used`)
// can be released whole, address space and metadata, with its pagemap entries
// cleared first: trim() releases those holding no retained slab, and an
// allocation that failed releases every empty one before its retry. Destroying
// the pool gives every chunk back.
#pragma once

#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/slab/chunks.hpp>
#include <sydra/alloc/slab/idle_return.hpp>
#include <sydra/alloc/slab/regions.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct SlabPoolOptions {
  std::size_t chunk_bytes = std::size_t{4} << 20;      // the first reservation
  std::size_t max_chunk_bytes = std::size_t{256} << 20;  // reservations double up to this
  std::size_t retain_bytes = std::size_t{4} << 20;     // empty slabs kept committed
  std::uint32_t decommit_delay_ms = 250;               // how long an empty slab beyond the budget waits
  // > 0: a process-wide background thread wakes at least this often and
  // decommits what is due, with no call into any handle (0: off; the polls
  // on other handles' slow paths and at thread exit still run).
  std::uint32_t background_return_ms = 0;
  // Chunks 2 MiB-aligned, in multiples of 2 MiB, with madvise(MADV_HUGEPAGE):
  // fewer TLB misses when many slabs are live, at the price of 2 MiB of RSS
  // wherever the kernel backs a huge page (a slab is 64 KiB). Decommitting
  // one slab of a huge page still works: the kernel splits the page. Only
  // for a RegionSource that offers it (OsRegions); ignored otherwise.
  bool huge_pages = false;
};

struct MemoryStats {
  std::uint64_t reserved_bytes = 0;     // address space held in chunks
  std::uint64_t committed_bytes = 0;    // in_use + retained: memory the pool holds
  std::uint64_t in_use_bytes = 0;       // slabs owned by a class
  std::uint64_t retained_bytes = 0;     // empty slabs kept committed
  std::uint64_t decommitted_bytes = 0;  // empty slabs whose memory went back to the OS
  std::uint64_t metadata_bytes = 0;     // the slab metadata arrays
  std::uint64_t chunks = 0;
  std::uint64_t slabs_reused_across_classes = 0;  // cumulative
  std::uint64_t decommits = 0;                    // cumulative: slabs decommitted
  std::uint64_t retain_budget_bytes = 0;          // the option, for reading the others
  std::uint64_t chunks_released = 0;              // cumulative: whole chunks given back (chunks - this are held)
  std::uint64_t oom_retries = 0;                  // cumulative: failed allocations retried after giving back
};

template <RegionSource Regions = OsRegions>
class SlabPool {
 public:
  SlabPool(const void* handle, const SlabPoolOptions& options, const typename Regions::Options& regions = {}) noexcept
      : options_(sanitized(options)),
        chunks_(handle, options_.chunk_bytes, options_.max_chunk_bytes, options_.huge_pages, regions) {
    idle_.run = &run_idle;
    idle_.ctx = this;
    idle_.background_ms = options_.background_return_ms;
    detail::idle_register(idle_);
  }
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;
  // No poller may be inside this pool when its chunks go back (chunks_'s
  // destructor, after this).
  ~SlabPool() { detail::idle_unregister(idle_); }

  // A slab for `owner`'s class `cls` (blocks of block_size), or nullptr when
  // the region source and the pagemap are out of memory.
  SlabMeta* acquire(SlabKind kind, void* owner, unsigned cls, std::uint32_t block_size) noexcept {
    std::lock_guard g(mu_);
    SlabMeta* m = take_retained();
    if (m == nullptr) m = take_decommitted();
    if (m == nullptr) m = chunks_.take_fresh();
    if (m == nullptr) return nullptr;
    if (m->last_class != Chunks::no_class && m->last_class != cls) ++reused_across_;
    m->owner = owner;
    m->free = nullptr;
    m->rfree = nullptr;
    m->nrfree = 0;
    m->prev = m->next = m->notify_next = nullptr;
    m->used.store(0, std::memory_order_relaxed);
    // No block of an empty slab is out, so no other thread can be pushing
    // onto its thread_free: plain resets, published with the slab.
    m->thread_free.store(0, std::memory_order_relaxed);
    m->thread_free_stamp.store(0, std::memory_order_relaxed);
    m->state = ShardSlab::full;
    m->carved = 0;
    m->block_size = block_size;
    m->block_magic = SlabMeta::magic_of(block_size);
    m->capacity = static_cast<std::uint16_t>(slab_bytes / block_size);
    m->size_class = static_cast<std::uint8_t>(cls);
    m->listed = false;
    m->committed = true;
#if SYDRA_ALLOC_CHECKED
    for (std::size_t w = 0; w < live_bitmap_words; ++w) m->live[w].store(0, std::memory_order_relaxed);
#endif
    m->kind = kind;
    in_use_ += 1;
    return m;
  }

  // Precondition: every block of the slab is back in it (used == 0). Takes
  // the pool's lock briefly; never decommits (the caller may hold a lock).
  void release(SlabMeta* m) noexcept {
    const std::uint64_t now = now_ms();
    std::lock_guard g(mu_);
    m->kind = SlabKind::empty;
    m->owner = nullptr;
    m->last_class = m->size_class;
    m->emptied_at_ms = now;
    m->prev = nullptr;  // retained list: head is the newest
    m->next = retained_head_;
    if (retained_head_ != nullptr) retained_head_->prev = m;
    retained_head_ = m;
    if (retained_tail_ == nullptr) retained_tail_ = m;
    ++retained_;
    retained_bytes_.store(retained_ * slab_bytes, std::memory_order_relaxed);
    in_use_ -= 1;
    note_surplus();
  }

  // Decommits retained slabs beyond keep_bytes now, oldest first, then
  // releases every chunk with no slab in use and none retained (its address
  // space is of no use to anyone while it is reserved here). Returns the
  // bytes decommitted.
  std::size_t trim(std::size_t keep_bytes) noexcept {
    const std::size_t freed = decommit(keep_bytes, 0, true);
    release_empty_chunks(/*keep_retained=*/true);
    return freed;
  }

  // After an allocation failed: every chunk whose slabs are all empty goes
  // back, retained ones included, so that the retry (or another heap) finds
  // the address space. Returns the bytes of address space released.
  std::size_t give_back_for_retry() noexcept {
    oom_retries_.fetch_add(1, std::memory_order_relaxed);
    return release_empty_chunks(/*keep_retained=*/false);
  }

  // Applies the delay policy: decommits what has waited long enough beyond
  // the budget, here and (through the idle registry) in every other pool of
  // the process. Call it holding no lock.
  SYDRA_FAST_PATH void tick() noexcept {
    detail::idle_poll();
    if (SYDRA_LIKELY(retained_bytes_.load(std::memory_order_relaxed) <= options_.retain_bytes)) return;
    decommit(options_.retain_bytes, now_ms(), false);
  }

  MemoryStats stats() const noexcept {
    std::lock_guard g(mu_);
    MemoryStats s;
    s.reserved_bytes = chunks_.reserved_slabs() * slab_bytes;
    s.in_use_bytes = in_use_ * slab_bytes;
    s.retained_bytes = retained_ * slab_bytes;
    s.committed_bytes = s.in_use_bytes + s.retained_bytes;
    s.decommitted_bytes = decommitted_ * slab_bytes;
    s.metadata_bytes = chunks_.metadata_bytes();
    s.chunks = chunks_.reserved();
    s.slabs_reused_across_classes = reused_across_;
    s.decommits = decommits_;
    s.retain_budget_bytes = options_.retain_bytes;
    s.chunks_released = chunks_.released();
    s.oom_retries = oom_retries_.load(std::memory_order_relaxed);
    return s;
  }

  const void* handle() const noexcept { return chunks_.handle(); }
  const SlabPoolOptions& options() const noexcept { return options_; }

  // Every slab of every chunk, counted where it is: on the retained or the
  // decommitted list, fresh (not yet carved from the newest chunk), in a
  // decommit's batch between its two locked steps, or in use (the rest).
  // exact: each list is as long as its counter says and the states add up
  // to what the chunks hold, so no slab is lost or counted twice. Walks the
  // lists under the lock: for tests (a fork's child above all).
  struct Audit {
    std::uint64_t reserved = 0, in_use = 0, retained = 0, decommitted = 0, fresh = 0, in_flight = 0;
    std::uint64_t listed_retained = 0, listed_decommitted = 0, counted_reserved = 0;  // what the lists and chunks hold
    bool exact = false;
  };
  Audit audit() const noexcept {
    std::lock_guard g(mu_);
    Audit a;
    for (const Chunk* c = chunks_.first(); c != nullptr; c = c->next) a.reserved += c->slabs;
    std::uint64_t listed_retained = 0, listed_decommitted = 0;
    for (const SlabMeta* m = retained_head_; m != nullptr; m = m->next) ++listed_retained;
    for (const SlabMeta* m = decommitted_head_; m != nullptr; m = m->next) ++listed_decommitted;
    for (const SlabMeta* m = in_flight_victims_; m != nullptr; m = m->next) ++a.in_flight;
    a.fresh = chunks_.fresh_left();
    a.in_use = in_use_;
    a.retained = retained_;
    a.decommitted = decommitted_;
    a.listed_retained = listed_retained;
    a.listed_decommitted = listed_decommitted;
    a.counted_reserved = chunks_.reserved_slabs();
    a.exact = listed_retained == retained_ && listed_decommitted == decommitted_ && a.reserved == a.counted_reserved &&
              in_use_ + retained_ + decommitted_ + a.fresh + a.in_flight == a.reserved;
    return a;
  }

  // fork(): the pool's lock, the last a pooled path takes.
  void fork_lock() noexcept { mu_.lock(); }
  void fork_unlock() noexcept { mu_.unlock(); }
  // In a fork's child, with the lock held: a batch that a thread the child
  // does not have was decommitting outside the lock has no one to finish it.
  // Its slabs go back on the retained list (decommitted or not, counting
  // them as committed is safe), so that nothing is lost and chunk releases
  // no longer wait for it.
  void fork_child() noexcept {
    for (SlabMeta* m = in_flight_victims_; m != nullptr;) {
      m->committed = true;
      m = retain_oldest(m);
    }
    in_flight_ = 0;
    in_flight_victims_ = nullptr;
    retained_bytes_.store(retained_ * slab_bytes, std::memory_order_relaxed);
    note_surplus();
  }

 private:
  using Chunks = SlabChunks<Regions>;
  using Chunk = typename Chunks::Chunk;

  static SlabPoolOptions sanitized(SlabPoolOptions o) noexcept {
    if (!Chunks::takes_huge_pages) o.huge_pages = false;
    const std::size_t g = Chunks::granule(o.huge_pages);
    auto round = [g](std::size_t n) { return n < g ? g : n / g * g; };
    o.chunk_bytes = round(o.chunk_bytes);
    o.max_chunk_bytes = round(o.max_chunk_bytes < o.chunk_bytes ? o.chunk_bytes : o.max_chunk_bytes);
    return o;
  }

  static std::uint64_t now_ms() noexcept { return detail::idle_now_ms(); }  // the idle registry's clock

  SlabMeta* take_retained() noexcept {
    SlabMeta* m = retained_head_;
    if (m == nullptr) return nullptr;
    retained_head_ = m->next;
    if (retained_head_ != nullptr) retained_head_->prev = nullptr;
    else retained_tail_ = nullptr;
    --retained_;
    retained_bytes_.store(retained_ * slab_bytes, std::memory_order_relaxed);
    return m;
  }
  SlabMeta* take_decommitted() noexcept {
    SlabMeta* m = decommitted_head_;
    if (m == nullptr) return nullptr;
    decommitted_head_ = m->next;
    if (decommitted_head_ != nullptr) decommitted_head_->prev = nullptr;
    --decommitted_;
    return m;  // touching it commits it again (zero-filled)
  }
  // Decommits retained slabs, oldest first, while more than `keep` bytes are
  // retained and (unless `now_all`) the oldest has been empty long enough.
  // The victims leave the retained list under the lock, are decommitted
  // outside it, and join the decommitted list under it again.
  SYDRA_SLOW_PATH std::size_t decommit(std::size_t keep, std::uint64_t now, bool now_all) noexcept {
    SlabMeta* victims = nullptr;
    {
      std::unique_lock g(mu_);
      // One batch in flight at a time, kept in in_flight_victims_ so that a
      // fork's child can take it back (fork_child()). A delayed decommit
      // leaves the work to the batch in flight; trim() waits for it.
      while (in_flight_ != 0) {
        if (!now_all) return 0;  // the batch in flight notes what is left when it ends
        g.unlock();
        std::this_thread::yield();
        g.lock();
      }
      while (retained_ * slab_bytes > keep && retained_tail_ != nullptr) {
        SlabMeta* m = retained_tail_;
        // `now` was read before the lock: a slab emptied since looks younger, never older.
        if (!now_all && m->emptied_at_ms + options_.decommit_delay_ms > now) break;
        retained_tail_ = m->prev;
        if (retained_tail_ != nullptr) retained_tail_->next = nullptr;
        else retained_head_ = nullptr;
        --retained_;
        m->next = victims;
        victims = m;
      }
      retained_bytes_.store(retained_ * slab_bytes, std::memory_order_relaxed);
      if (victims == nullptr) {
        note_surplus();  // a poll that found nothing due yet keeps the pool pending
        return 0;
      }
      in_flight_ = 1;  // the victims are on no list meanwhile: no chunk release may take them
      in_flight_victims_ = victims;
    }
    // No lock held: a madvise may take a while. The chain is only read here,
    // and each victim's outcome goes into its `committed` flag, which nobody
    // reads while a batch is in flight.
    std::size_t freed = 0;
    for (SlabMeta* m = victims; m != nullptr; m = m->next) {
      m->committed = !chunks_.decommit(*m);
      if (!m->committed) freed += slab_bytes;
    }
    std::lock_guard g(mu_);
    SlabMeta *done = nullptr, *kept = nullptr;
    for (SlabMeta* m = victims; m != nullptr;) {
      SlabMeta* next = m->next;
      if (m->committed) {
        m->next = kept;
        kept = m;
      } else {
        m->next = done;
        done = m;
      }
      m = next;
    }
    for (SlabMeta* m = done; m != nullptr;) {
      SlabMeta* next = m->next;
      m->prev = nullptr;
      m->next = decommitted_head_;
      if (decommitted_head_ != nullptr) decommitted_head_->prev = m;
      decommitted_head_ = m;
      ++decommitted_;
      ++decommits_;
      m = next;
    }
    for (SlabMeta* m = kept; m != nullptr;) m = retain_oldest(m);  // back at the old end, still retained
    if (kept != nullptr) cannot_decommit_ = true;
    in_flight_ = 0;
    in_flight_victims_ = nullptr;
    retained_bytes_.store(retained_ * slab_bytes, std::memory_order_relaxed);
    note_surplus();  // what is still beyond the budget (younger slabs; a trim that kept more)
    return freed;
  }

  // Under mu_: puts m at the old end of the retained list (it is due for
  // decommit first); returns the slab its `next` pointed to, so that a chain
  // linked through `next` can be walked while it is appended.
  SlabMeta* retain_oldest(SlabMeta* m) noexcept {
    SlabMeta* next = m->next;
    m->next = nullptr;
    m->prev = retained_tail_;
    if (retained_tail_ != nullptr) retained_tail_->next = m;
    else retained_head_ = m;
    retained_tail_ = m;
    ++retained_;
    return next;
  }

  // Under mu_: tells the idle registry when the oldest surplus slab is due.
  void note_surplus() noexcept {
    if (retained_ * slab_bytes <= options_.retain_bytes || retained_tail_ == nullptr || cannot_decommit_) return;
    detail::idle_note_due(idle_, retained_tail_->emptied_at_ms + options_.decommit_delay_ms);
  }

  static void run_idle(void* self, std::uint64_t now) noexcept {
    auto* pool = static_cast<SlabPool*>(self);
    pool->decommit(pool->options_.retain_bytes, now, false);
  }

  // Releases every chunk none of whose slabs is owned (and, with
  // keep_retained, none retained). Its slabs leave the pool's lists; the
  // pagemap entries are cleared before the memory goes, so a lookup never
  // returns a record of a released chunk once erase returns.
  std::size_t release_empty_chunks(bool keep_retained) noexcept {
    if constexpr (!Chunks::releases_regions) {
      (void)keep_retained;
      return 0;
    } else {
      for (;;) {
        std::unique_lock g(mu_);
        if (in_flight_ != 0) {  // a decommit holds slabs on no list: wait it out (it is short)
          g.unlock();
          std::this_thread::yield();
          continue;
        }
        Chunk* dead = chunks_.unlink_empty(keep_retained, [this](const Chunk& c) {
          for (std::size_t i = 0; i < c.slabs; ++i) {
            SlabMeta* m = &c.metas[i];
            if (chunks_.is_fresh(c, i)) continue;  // on no list
            if (m->committed) unlink_retained(m);
            else unlink_decommitted(m);
          }
        });
        retained_bytes_.store(retained_ * slab_bytes, std::memory_order_relaxed);
        // Still under the lock: a RegionSource need not be thread-safe
        // (regions.hpp), and reserve() runs under this lock. Rare: trim()
        // and out-of-memory retries only.
        return chunks_.give_back(dead);
      }
    }
  }

  void unlink_retained(SlabMeta* m) noexcept {
    if (m->prev != nullptr) m->prev->next = m->next;
    else retained_head_ = m->next;
    if (m->next != nullptr) m->next->prev = m->prev;
    else retained_tail_ = m->prev;
    --retained_;
  }
  void unlink_decommitted(SlabMeta* m) noexcept {
    if (m->prev != nullptr) m->prev->next = m->next;
    else decommitted_head_ = m->next;
    if (m->next != nullptr) m->next->prev = m->prev;
    --decommitted_;
  }

  SlabPoolOptions options_;
  Chunks chunks_;  // under mu_, but for decommit()
  mutable std::mutex mu_;
  SlabMeta* retained_head_ = nullptr;
  SlabMeta* retained_tail_ = nullptr;
  SlabMeta* decommitted_head_ = nullptr;
  std::uint64_t retained_ = 0, decommitted_ = 0, in_use_ = 0, reused_across_ = 0, decommits_ = 0;
  std::atomic<std::size_t> retained_bytes_{0};  // mirrors retained_ for tick()'s lock-free check
  std::uint32_t in_flight_ = 0;   // a decommit between its two locked steps (at most one)
  SlabMeta* in_flight_victims_ = nullptr;  // its batch, linked through next
  bool cannot_decommit_ = false;  // the source refused once (a FixedArena): stop noting surplus
  std::atomic<std::uint64_t> oom_retries_{0};
  detail::IdleClient idle_;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
