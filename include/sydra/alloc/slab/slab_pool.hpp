// SlabPool: every slab a handle uses, from reservation to decommit.
//
//   chunk     a region of address space from the RegionSource (4 MiB first,
//             doubling up to max_chunk_bytes), cut into 64 KiB slabs; its
//             slabs' metadata sits in a separate dense array
//   fresh     a slab never handed out: address space only, nothing committed
//   in use    owned by one class of one bucket or shard
//   retained  empty, committed, kept for the next owner of any class
//   decommitted  empty, its memory returned to the OS, its range still reserved
//
// An owner returns a slab the moment its last block comes back (its `used`
// count reaches zero), so memory follows the workload: the slabs of a spike
// of 16-byte rows serve the 128-byte buffers that come after it. Retention
// policy: empty slabs beyond `retain_bytes` are decommitted once they have
// been empty for `decommit_delay_ms` (checked whenever a slab is returned or
// taken, and at collect_garbage()), and at once by trim(). The newest empty
// slab is reused first (its cache lines are warm); the oldest is decommitted
// first. Destroying the pool gives every chunk back.
#pragma once

#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/pal/os_memory.hpp>
#include <sydra/alloc/slab/pagemap.hpp>
#include <sydra/alloc/slab/regions.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <new>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct SlabPoolOptions {
  std::size_t chunk_bytes = std::size_t{4} << 20;      // the first reservation
  std::size_t max_chunk_bytes = std::size_t{256} << 20;  // reservations double up to this
  std::size_t retain_bytes = std::size_t{4} << 20;     // empty slabs kept committed
  std::uint32_t decommit_delay_ms = 250;               // how long an empty slab beyond the budget waits
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
};

template <RegionSource Regions = OsRegions>
class SlabPool {
 public:
  SlabPool(const void* handle, const SlabPoolOptions& options, const typename Regions::Options& regions = {}) noexcept
      : handle_(handle), options_(sanitized(options)), regions_(regions), next_chunk_bytes_(options_.chunk_bytes) {}
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;
  ~SlabPool() {
    for (Chunk* c = chunks_; c != nullptr;) {
      Chunk* next = c->next;
      Pagemap::erase(c->base, c->slabs);
      track::on_release_region(c->base, c->slabs * slab_bytes);
      regions_.release(c->base, c->slabs * slab_bytes);
      pal::release(c, c->meta_bytes);
      c = next;
    }
  }

  // A slab for `owner`'s class `cls` (blocks of block_size), or nullptr when
  // the region source and the pagemap are out of memory.
  SlabMeta* acquire(SlabKind kind, void* owner, unsigned cls, std::uint32_t block_size) noexcept {
    std::lock_guard g(mu_);
    SlabMeta* m = take_retained();
    if (m == nullptr) m = take_decommitted();
    if (m == nullptr) m = take_fresh();
    if (m == nullptr) return nullptr;
    if (m->last_class != no_class && m->last_class != cls) ++reused_across_;
    m->owner = owner;
    m->free = nullptr;
    m->prev = m->next = nullptr;
    m->used.store(0, std::memory_order_relaxed);
    m->carved = 0;
    m->block_size = static_cast<std::uint16_t>(block_size);
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
  }

  // Decommits retained slabs beyond keep_bytes now, oldest first. Returns the
  // bytes given back to the OS.
  std::size_t trim(std::size_t keep_bytes) noexcept { return decommit(keep_bytes, 0, true); }

  // Applies the delay policy: decommits what has waited long enough beyond
  // the budget. Call it holding no lock.
  SYDRA_FAST_PATH void tick() noexcept {
    if (SYDRA_LIKELY(retained_bytes_.load(std::memory_order_relaxed) <= options_.retain_bytes)) return;
    decommit(options_.retain_bytes, now_ms(), false);
  }

  MemoryStats stats() const noexcept {
    std::lock_guard g(mu_);
    MemoryStats s;
    s.reserved_bytes = reserved_slabs_ * slab_bytes;
    s.in_use_bytes = in_use_ * slab_bytes;
    s.retained_bytes = retained_ * slab_bytes;
    s.committed_bytes = s.in_use_bytes + s.retained_bytes;
    s.decommitted_bytes = decommitted_ * slab_bytes;
    s.metadata_bytes = metadata_bytes_;
    s.chunks = chunks_count_;
    s.slabs_reused_across_classes = reused_across_;
    s.decommits = decommits_;
    s.retain_budget_bytes = options_.retain_bytes;
    return s;
  }

  const void* handle() const noexcept { return handle_; }
  const SlabPoolOptions& options() const noexcept { return options_; }

  // fork(): the pool's lock, the last a pooled path takes.
  void fork_lock() noexcept { mu_.lock(); }
  void fork_unlock() noexcept { mu_.unlock(); }

 private:
  static constexpr std::uint8_t no_class = 0xff;

  struct Chunk {
    Chunk* next;
    char* base;
    std::size_t slabs;
    std::size_t meta_bytes;
    SlabMeta* metas;
  };

  static SlabPoolOptions sanitized(SlabPoolOptions o) noexcept {
    auto round = [](std::size_t n) { return n < slab_bytes ? slab_bytes : n / slab_bytes * slab_bytes; };
    o.chunk_bytes = round(o.chunk_bytes);
    o.max_chunk_bytes = round(o.max_chunk_bytes < o.chunk_bytes ? o.chunk_bytes : o.max_chunk_bytes);
    return o;
  }

  static std::uint64_t now_ms() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }

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
    --decommitted_;
    return m;  // touching it commits it again (zero-filled)
  }
  SlabMeta* take_fresh() noexcept {
    if (fresh_chunk_ == nullptr || fresh_next_ == fresh_chunk_->slabs) {
      if (!add_chunk()) return nullptr;
    }
    return &fresh_chunk_->metas[fresh_next_++];
  }

  // Reserves a chunk, halving the request down to one slab if the source
  // cannot give the full size (a nearly full FixedArena), and publishes its
  // slabs in the pagemap.
  bool add_chunk() noexcept {
    for (std::size_t bytes = next_chunk_bytes_; bytes >= slab_bytes; bytes = bytes / 2 / slab_bytes * slab_bytes) {
      void* region = regions_.reserve(bytes);
      if (region == nullptr) continue;
      const std::size_t slabs = bytes / slab_bytes;
      std::size_t meta_bytes = sizeof(Chunk) + slabs * sizeof(SlabMeta);
#if SYDRA_ALLOC_CHECKED
      meta_bytes += slabs * live_bitmap_words * sizeof(std::uint64_t);
#endif
      meta_bytes = (meta_bytes + pal::page_bytes - 1) / pal::page_bytes * pal::page_bytes;
      void* meta = pal::reserve(meta_bytes, pal::page_bytes);
      if (meta == nullptr) {
        regions_.release(region, bytes);
        return false;
      }
      auto* c = ::new (meta) Chunk{chunks_, static_cast<char*>(region), slabs, meta_bytes, nullptr};
      char* arrays = static_cast<char*>(meta) + ((sizeof(Chunk) + 63) & ~std::size_t{63});
      c->metas = reinterpret_cast<SlabMeta*>(arrays);
      for (std::size_t i = 0; i < slabs; ++i) {
        SlabMeta* m = ::new (&c->metas[i]) SlabMeta{};
        m->handle = handle_;
        m->base = c->base + i * slab_bytes;
        m->kind = SlabKind::empty;
        m->last_class = no_class;
#if SYDRA_ALLOC_CHECKED
        m->live = reinterpret_cast<std::atomic<std::uint64_t>*>(arrays + slabs * sizeof(SlabMeta)) +
                  i * live_bitmap_words;
#endif
      }
      if (!Pagemap::insert(c->base, slabs, c->metas)) {
        regions_.release(region, bytes);
        pal::release(meta, meta_bytes);
        return false;
      }
      track::on_new_region(c->base, bytes);  // poisoned until blocks are handed out
      chunks_ = c;
      ++chunks_count_;
      reserved_slabs_ += slabs;
      metadata_bytes_ += meta_bytes;
      fresh_chunk_ = c;
      fresh_next_ = 0;
      if (next_chunk_bytes_ < options_.max_chunk_bytes) next_chunk_bytes_ *= 2;
      return true;
    }
    return false;
  }

  // Decommits retained slabs, oldest first, while more than `keep` bytes are
  // retained and (unless `now_all`) the oldest has been empty long enough.
  // The victims leave the retained list under the lock, are decommitted
  // outside it, and join the decommitted list under it again.
  SYDRA_SLOW_PATH std::size_t decommit(std::size_t keep, std::uint64_t now, bool now_all) noexcept {
    SlabMeta* victims = nullptr;
    {
      std::lock_guard g(mu_);
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
    }
    if (victims == nullptr) return 0;
    std::size_t freed = 0;
    SlabMeta *done = nullptr, *kept = nullptr;
    for (SlabMeta* m = victims; m != nullptr;) {
      SlabMeta* next = m->next;
      if (regions_.decommit(m->base, slab_bytes)) {  // no lock held: a madvise may take a while
        m->next = done;
        done = m;
        freed += slab_bytes;
      } else {  // a source that cannot decommit (a FixedArena) keeps its slabs retained
        m->next = kept;
        kept = m;
      }
      m = next;
    }
    std::lock_guard g(mu_);
    for (SlabMeta* m = done; m != nullptr;) {
      SlabMeta* next = m->next;
      m->committed = false;
      m->next = decommitted_head_;
      decommitted_head_ = m;
      ++decommitted_;
      ++decommits_;
      m = next;
    }
    for (SlabMeta* m = kept; m != nullptr;) {  // back at the old end, still retained
      SlabMeta* next = m->next;
      m->next = nullptr;
      m->prev = retained_tail_;
      if (retained_tail_ != nullptr) retained_tail_->next = m;
      else retained_head_ = m;
      retained_tail_ = m;
      ++retained_;
      m = next;
    }
    retained_bytes_.store(retained_ * slab_bytes, std::memory_order_relaxed);
    return freed;
  }

  const void* handle_;
  SlabPoolOptions options_;
  Regions regions_;
  mutable std::mutex mu_;
  Chunk* chunks_ = nullptr;
  Chunk* fresh_chunk_ = nullptr;
  std::size_t fresh_next_ = 0;
  std::size_t next_chunk_bytes_;
  SlabMeta* retained_head_ = nullptr;
  SlabMeta* retained_tail_ = nullptr;
  SlabMeta* decommitted_head_ = nullptr;
  std::uint64_t retained_ = 0, decommitted_ = 0, in_use_ = 0, reserved_slabs_ = 0, chunks_count_ = 0;
  std::uint64_t metadata_bytes_ = 0, reused_across_ = 0, decommits_ = 0;
  std::atomic<std::size_t> retained_bytes_{0};  // mirrors retained_ for tick()'s lock-free check
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
