// RemoteCache: a shard owner's frees of other shards' blocks, batched per
// destination, as snmalloc's remote deallocation cache does.
//
// A remote free links the block into the batch for (destination shard,
// class): a store into the freed block, nothing shared. When a batch reaches
// `batch` blocks, or its slot is wanted for another destination, or the owner
// reaches a slow path, exits or collects, the batch is published: one
// compare-exchange pushes the whole chain onto the destination's deferred
// stack, stamped with the epoch of the publication (every block in it was
// freed at or before that epoch, so the stamp only ever errs on the safe side).
//
// Chain format on a deferred stack: the first block of each batch carries the
// batch's epoch stamp (never 0); the blocks after it carry 0, "same batch".
// Owner-only.
#pragma once

#include <sydra/alloc/slab/slab_meta.hpp>

#include <array>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <bool Hardened = false>
class RemoteCache {
 public:
  static constexpr unsigned ways = 16;

  struct Batch {
    void* dest = nullptr;  // the destination shard (opaque here)
    std::uint32_t cls = 0;
    std::uint32_t count = 0;
    FreeNode* head = nullptr;
    FreeNode* tail = nullptr;
  };

  // Adds a block for (dest, cls). Calls publish(batch) for a batch that must
  // leave first (a different destination in the slot, or a full one).
  template <class Publish>
  SYDRA_FAST_PATH void add(void* dest, std::uint32_t dest_index, std::uint32_t cls, void* block,
                           std::uint32_t batch_limit, Publish&& publish) noexcept {
    Batch& b = ways_[(dest_index * 7 + cls) % ways];
    if (SYDRA_UNLIKELY(b.dest != dest || b.cls != cls)) {
      if (b.count != 0) emit(b, publish);
      b.dest = dest;
      b.cls = cls;
    }
    auto* n = static_cast<FreeNode*>(block);
    Links<Hardened>::store_link(n, b.head, 0);
    b.head = n;
    if (b.tail == nullptr) b.tail = n;
    if (++b.count >= batch_limit) emit(b, publish);
  }

  // Publishes every batch.
  template <class Publish>
  void flush(Publish&& publish) noexcept {
    for (Batch& b : ways_)
      if (b.count != 0) emit(b, publish);
  }

  // Blocks held here, not yet published.
  std::uint64_t held() const noexcept {
    std::uint64_t n = 0;
    for (const Batch& b : ways_) n += b.count;
    return n;
  }

 private:
  template <class Publish>
  static void emit(Batch& b, Publish& publish) noexcept {
    publish(b);
    b.count = 0;
    b.head = b.tail = nullptr;
  }

  std::array<Batch, ways> ways_{};
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
