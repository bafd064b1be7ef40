// RemoteCache: a shard owner's frees of other shards' blocks, batched per
// slab, as snmalloc's remote deallocation cache builds per-slab segments
// before it sends them.
//
// A remote free links the block into the batch for its slab: a store into
// the freed block, nothing shared. When a batch reaches its limit, or its way
// is wanted for another slab, or the owner reaches a slow path, exits or
// collects, the batch is published: one compare-exchange pushes the whole
// chain onto the slab's thread_free (shard/remote_free.hpp), whose owner
// takes it whole, without walking it. Owner-only.
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
  static_assert(ways <= 32, "held_ways_ has a bit per way");

  struct Batch {
    SlabMeta* slab = nullptr;  // the blocks' slab
    std::uint32_t count = 0;
    FreeNode* head = nullptr;
    FreeNode* tail = nullptr;
  };

  // Adds a block of slab m. Calls publish(batch) for a batch that must leave
  // first (another slab's in the way, or a full one).
  template <class Publish>
  SYDRA_FAST_PATH void add(SlabMeta* m, void* block, std::uint32_t batch_limit, Publish&& publish) noexcept {
    // SlabMeta records are 128 bytes apart: bits 7 and up tell them apart.
    const unsigned way = (reinterpret_cast<std::uintptr_t>(m) >> 7) % ways;
    Batch& b = ways_[way];
    if (SYDRA_UNLIKELY(b.slab != m)) {
      if (b.count != 0) emit(b, publish);
      b.slab = m;
    }
    auto* n = static_cast<FreeNode*>(block);
    Links<Hardened>::store_next(n, b.head);
    b.head = n;
    if (b.tail == nullptr) b.tail = n;
    held_ways_ |= 1u << way;
    if (++b.count >= batch_limit) emit(b, publish);
  }

  // Publishes every batch. Every fill calls it: with nothing held it reads
  // one word, not the 16 ways.
  template <class Publish>
  void flush(Publish&& publish) noexcept {
    for (std::uint32_t w = held_ways_; w != 0; w &= w - 1) {
      Batch& b = ways_[static_cast<unsigned>(__builtin_ctz(w))];
      if (b.count != 0) emit(b, publish);
    }
    held_ways_ = 0;
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
  std::uint32_t held_ways_ = 0;  // a bit per way that may hold blocks
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
