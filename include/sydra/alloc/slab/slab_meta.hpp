// A slab is 64 KiB of blocks of one size class, 64 KiB-aligned, with no
// header of any kind inside it: every block, from the first byte on, is
// usable. What the allocator knows about a slab lives off the slab, in a
// SlabMeta kept in a dense per-chunk array (slab_pool.hpp) and found from any
// address through the Pagemap. Keeping it off the slab means 2,000 live
// slabs' metadata is 2,000 consecutive 128-byte records, not 2,000 headers at
// 64 KiB-aligned addresses fighting over the same few cache sets.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/diagnostics.hpp>
#include <sydra/alloc/pal/os_memory.hpp>
#include <sydra/alloc/slab/pagemap.hpp>
#include <sydra/alloc/slab/sanitizer.hpp>
#include <sydra/alloc/slab/size_classes.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

enum class SlabKind : std::uint8_t { empty, bucket, shard };

// Where a shard slab is on its owner's lists (shard/owner_slabs.hpp). The
// owner's free fast path takes a slab at `partial` or above; below, its free
// must move the slab between lists first.
enum class ShardSlab : std::uint8_t {
  full,     // nothing to hand out; on no list until a block comes back
  waiting,  // only remote frees that pinned readers may still see
  partial,  // on the owner's list of slabs with blocks to hand out
  current,  // the one the class allocates from
};

struct FreeNode;

// Two cache lines. The first is what every free reads, and no free writes:
// the routing, stable while any block is live, and the slow paths' list
// links. The second is what frees write: the owner's free list and counts,
// and the word other threads push their frees onto. So a remote free reads
// a line that the owner's frees leave shared in every core's cache, instead
// of taking it from the owner each time (and the owner taking it back).
struct alignas(64) SlabMeta {
  // ---- Line 1: routing, read by any thread that frees a block of the slab.
  // Written when the pool hands the slab to an owner, before any of its
  // blocks exists, and stable while any block is live.
  const void* handle;  // which handle's pool (the foreign-pointer check)
  void* owner;         // the Bucket or Shard its blocks return to
  char* base;          // the slab's first block
  std::uint32_t block_size;  // up to a whole slab (a 64 KiB class)
  // block_size's divisibility magic (Lemire, 32 bits: offsets are below
  // 2^16), so a free checks "starts a block" with one multiply on the line
  // it reads anyway, and no table load.
  std::uint32_t block_magic;
  std::uint16_t capacity;  // blocks in the slab
  std::uint8_t size_class;
  SlabKind kind;
  std::uint8_t last_class;  // the class it served before it was last emptied (reuse across classes)
  // One byte for both flags. Never written concurrently: `listed` by the
  // owner while the slab is in use, `committed` by the pool while it is
  // empty, and the hand-over between them is ordered by the pool's lock.
  bool listed : 1;     // on its owner's list of slabs with blocks to give (bucket slabs)
  bool committed : 1;  // its memory is committed (false after a decommit, until reused)
  // The slow paths' links (a slab changes lists far less often than it is
  // freed into).
  SlabMeta* prev;  // owner: its list of slabs; pool: its empty list
  SlabMeta* next;
#if SYDRA_ALLOC_CHECKED
  // Checked builds: one bit per handed-out block. Atomic because a remote
  // free may clear a bit while the owner sets another in the same word.
  std::atomic<std::uint64_t>* live;
#endif

  // ---- Line 2: what frees write. The owner's (owner thread only, or under
  // the bucket's lock; the pool's while the slab is empty):
  alignas(64) FreeNode* rfree;  // shard owner: remote frees taken back by a collect, reusable
  union {
    FreeNode* free;               // owner: blocks given back to this slab
    std::uint64_t emptied_at_ms;  // pool: when it became empty (decommit delay)
  };
  std::atomic<std::uint32_t> used;  // blocks out of the slab's lists: live, cached, or freed remotely and not yet taken
  std::uint16_t carved;             // blocks ever carved from the slab's untouched tail
  std::uint16_t nrfree;             // blocks on rfree
  ShardSlab state;                  // shard slabs: which of the owner's lists
  // Shard slabs: other threads' frees (shard/remote_free.hpp), a stack of
  // blocks packed with its count and a "queued" bit, pushed a batch at a
  // time.
  std::atomic<std::uint64_t> thread_free;
  std::atomic<std::uint64_t> thread_free_stamp;  // the newest epoch stamp pushed onto thread_free
  SlabMeta* notify_next;                         // its owner's stack of slabs with news

  static constexpr std::uint32_t magic_of(std::uint32_t size) noexcept { return ~std::uint32_t{0} / size + 1; }
  // p (inside this slab) is the start of one of its blocks. A slab is 64
  // KiB-aligned, so the offset is the address's low bits: no load of base.
  SYDRA_FAST_PATH bool starts_block(const void* p) const noexcept {
    const auto off = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(p) & (slab_bytes - 1));
    return off * block_magic < block_magic;  // Lemire's "<= magic - 1", one instruction shorter
  }
  std::uint32_t index_of_offset(std::size_t off) const noexcept { return static_cast<std::uint32_t>(off / block_size); }
  // Checked builds only: flips a block's live bit; returns its previous value.
#if SYDRA_ALLOC_CHECKED
  bool mark_live(std::size_t index, bool live_now) noexcept {
    const std::uint64_t bit = std::uint64_t{1} << (index % 64);
    std::atomic<std::uint64_t>& word = live[index / 64];
    const std::uint64_t old = live_now ? word.fetch_or(bit, std::memory_order_relaxed)
                                       : word.fetch_and(~bit, std::memory_order_relaxed);
    return (old & bit) != 0;
  }
  bool is_live(std::size_t index) const noexcept {
    return (live[index / 64].load(std::memory_order_relaxed) >> (index % 64)) & 1;
  }
#endif
};
static_assert(sizeof(SlabMeta) == 128, "two cache lines per slab's metadata");
inline constexpr std::size_t live_bitmap_words = slab_bytes / 16 / 64;  // one bit per smallest block

// An intrusive free-list node, written into a freed block. Every list links
// through the first word only; the second is the hardened policies' canary
// (handle.hpp). Reads and writes go through these accessors because the
// block is poisoned for ASan meanwhile.
struct FreeNode {
  FreeNode* next;
  std::uint64_t canary;
};

SYDRA_NO_ASAN inline FreeNode* load_next(FreeNode* n) noexcept {
  track::link_access_begin(n, sizeof(FreeNode));
  FreeNode* next = n->next;
  track::link_access_end(n, sizeof(FreeNode));
  return next;
}
SYDRA_NO_ASAN inline void store_next(FreeNode* n, FreeNode* next) noexcept {
  track::link_access_begin(n, sizeof(FreeNode));
  n->next = next;
  track::link_access_end(n, sizeof(FreeNode));
}

// How a pool stores links inside freed blocks. Plain: as they are. Hardened
// (a policy's opt-in, mimalloc's secure mode is the model): each link and
// epoch stamp is xor-ed with a per-process secret and the node's address, and
// every link read is checked to point into a slab, so that a stray write into
// a freed block (a use after free, an overflow) aborts as a corrupted free
// list instead of steering the allocator to an address of its choosing.
template <bool Hardened>
struct Links {
  SYDRA_FAST_PATH static FreeNode* load_next(FreeNode* n) noexcept { return decode(n, sydra::alloc::load_next(n)); }
  SYDRA_FAST_PATH static void store_next(FreeNode* n, FreeNode* next) noexcept {
    sydra::alloc::store_next(n, encode(n, next));
  }

 private:
  static std::uint64_t key(const FreeNode* n) noexcept {
    return pal::process_secret() ^ reinterpret_cast<std::uintptr_t>(n);
  }
  SYDRA_FAST_PATH static FreeNode* encode(FreeNode* n, FreeNode* next) noexcept {
    if constexpr (!Hardened) {
      (void)n;
      return next;
    } else {
      return reinterpret_cast<FreeNode*>(reinterpret_cast<std::uintptr_t>(next) ^ key(n));
    }
  }
  SYDRA_FAST_PATH static FreeNode* decode(FreeNode* n, FreeNode* raw) noexcept {
    if constexpr (!Hardened) {
      (void)n;
      return raw;
    } else {
      auto* next = reinterpret_cast<FreeNode*>(reinterpret_cast<std::uintptr_t>(raw) ^ key(n));
      if (next != nullptr && ((reinterpret_cast<std::uintptr_t>(next) & 7) != 0 || Pagemap::lookup(next) == nullptr))
        report_misuse(Misuse::corrupted_free_list, "a link inside a freed block was overwritten", n, 0, 0);
      return next;
    }
  }
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
