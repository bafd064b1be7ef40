// A slab: 64 KiB, 64 KiB-aligned, taken from the backing heap. Its header sits
// at the base and says who owns the blocks behind it; blocks carry no header.
//
//   [ SlabHeader | bitmap (checked builds) ][ block 0 ][ block 1 ] ... [ block n-1 ]
//   ^ base (found from any block through the Pagemap)
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/slab/pagemap.hpp>
#include <sydra/alloc/slab/sanitizer.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace v1 {

enum class SlabKind : std::uint8_t { bucket, shard };

struct SlabHeader {
  static constexpr std::size_t max_blocks = slab_bytes / 16;
  static constexpr std::size_t bitmap_words = checked ? max_blocks / 64 : 0;

  const void* handle;      // which handle's pool this is (foreign-pointer check)
  void* owner;             // the Bucket or Shard that the blocks return to
  SlabHeader* next_slab;   // the owner's list of slabs, walked at teardown
  std::uint32_t block_size;
  std::uint32_t capacity;
  std::uint8_t size_class;
  SlabKind kind;
  // Checked builds: one bit per handed-out block. Atomic because a remote
  // free may clear a bit while the owner sets another in the same word.
  std::atomic<std::uint64_t> live[bitmap_words > 0 ? bitmap_words : 1];

  static constexpr std::size_t blocks_offset() noexcept {
    return (sizeof(SlabHeader) + 63) & ~std::size_t{63};
  }
  char* first_block() noexcept { return reinterpret_cast<char*>(this) + blocks_offset(); }
  char* end() noexcept { return first_block() + std::size_t{capacity} * block_size; }

  // Checked builds only: block index of p, or -1 for an interior pointer.
  std::ptrdiff_t index_of(const void* p) noexcept {
    const std::ptrdiff_t off = static_cast<const char*>(p) - first_block();
    if (off < 0 || off % block_size != 0 || off / block_size >= capacity) return -1;
    return off / block_size;
  }
  // Flip a block's live bit; returns the bit's previous value.
  bool mark_live(std::size_t index, bool live_now) noexcept {
    const std::uint64_t bit = std::uint64_t{1} << (index % 64);
    std::atomic<std::uint64_t>& word = live[index / 64];
    const std::uint64_t old = live_now ? word.fetch_or(bit, std::memory_order_relaxed)
                                       : word.fetch_and(~bit, std::memory_order_relaxed);
    return (old & bit) != 0;
  }
};
static_assert(SlabHeader::blocks_offset() + 16 * 64 < slab_bytes, "the header must leave room for blocks");
static_assert(SlabHeader::blocks_offset() % 16 == 0, "blocks must start 16-aligned");

namespace detail {
consteval bool every_class_fits_a_slab() {
  for (auto size : size_classes)
    if ((slab_bytes - SlabHeader::blocks_offset()) / size < 64) return false;
  return true;
}
}  // namespace detail
static_assert(detail::every_class_fits_a_slab(), "every class must fit at least 64 blocks in a slab");

// An intrusive free-list node, written into a freed block. Reads and writes go
// through these accessors because the block is poisoned for ASan meanwhile.
struct FreeNode {
  FreeNode* next;
  std::uint64_t epoch;  // deferred frees: the epoch the block was freed in
};

SYDRA_NO_ASAN inline FreeNode* load_next(FreeNode* n) noexcept {
  track::link_access_begin(n, sizeof(FreeNode));
  FreeNode* next = n->next;
  track::link_access_end(n, sizeof(FreeNode));
  return next;
}
SYDRA_NO_ASAN inline void store_link(FreeNode* n, FreeNode* next, std::uint64_t epoch = 0) noexcept {
  track::link_access_begin(n, sizeof(FreeNode));
  n->next = next;
  n->epoch = epoch;
  track::link_access_end(n, sizeof(FreeNode));
}
// Local free lists need only the link; the epoch is for deferred frees.
SYDRA_NO_ASAN inline void store_next(FreeNode* n, FreeNode* next) noexcept {
  track::link_access_begin(n, sizeof(FreeNode));
  n->next = next;
  track::link_access_end(n, sizeof(FreeNode));
}
SYDRA_NO_ASAN inline std::uint64_t load_epoch(FreeNode* n) noexcept {
  track::link_access_begin(n, sizeof(FreeNode));
  const std::uint64_t e = n->epoch;
  track::link_access_end(n, sizeof(FreeNode));
  return e;
}

// Hands out slabs for one handle: aligned memory from the backing heap,
// published in the Pagemap, poisoned until blocks are carved from it.
class SlabSource {
 public:
  SlabSource(Allocator backing, const void* handle) noexcept : backing_(backing), handle_(handle) {}

  // nullptr when the backing heap or the pagemap is out of memory.
  SlabHeader* acquire(SlabKind kind, unsigned cls, void* owner) noexcept {
    void* mem = backing_.alloc(slab_bytes, slab_bytes);
    if (mem == nullptr) return nullptr;
    auto* h = ::new (mem) SlabHeader{};
    h->handle = handle_;
    h->owner = owner;
    h->next_slab = nullptr;
    h->block_size = size_classes[cls];
    h->capacity = static_cast<std::uint32_t>((slab_bytes - SlabHeader::blocks_offset()) / h->block_size);
    h->size_class = static_cast<std::uint8_t>(cls);
    h->kind = kind;
    if (!Pagemap::insert(mem, h)) {
      backing_.free(mem, slab_bytes, slab_bytes);
      return nullptr;
    }
    track::on_new_region(h->first_block(), slab_bytes - SlabHeader::blocks_offset());
    return h;
  }

  void release(SlabHeader* h) noexcept {
    Pagemap::erase(h);
    track::on_release_region(h->first_block(), slab_bytes - SlabHeader::blocks_offset());
    h->~SlabHeader();
    backing_.free(h, slab_bytes, slab_bytes);
  }

  Allocator backing() const noexcept { return backing_; }
  const void* handle() const noexcept { return handle_; }

 private:
  Allocator backing_;
  const void* handle_;
};

}  // namespace v1
}  // namespace sydra::alloc
