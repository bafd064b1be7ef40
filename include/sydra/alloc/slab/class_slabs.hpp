// ClassSlabs: the slabs one owner (a bucket, or a shard) holds for one size
// class, and the blocks that move between them and the owner's caches.
//
// Each slab keeps its own free list and its `used` count (blocks out of it:
// live, cached or in flight), so the owner learns that a slab is empty the
// moment its last block comes back, without walking any list, and hands it to
// the pool, from which any class of any owner may take it. Slabs with blocks
// to give (on their free list or never carved yet) are on a doubly linked
// list, so a slab leaves it in O(1) when it fills or empties.
//
// Not thread-safe: the owner's thread, or the bucket's lock, serialises it.
#pragma once

#include <sydra/alloc/slab/slab_pool.hpp>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// Who a new slab is for: its owner and its class.
struct SlabIdentity {
  SlabKind kind;
  void* owner;
  unsigned cls;
  std::uint32_t block_size;
};

template <bool Hardened = false>
class ClassSlabs {
  using L = Links<Hardened>;

 public:
  using Identity = SlabIdentity;

  // Takes up to n blocks, fewest slabs first (free lists, then never-carved
  // space, then a new slab). Returns how many it took: fewer than n only when
  // the pool is out of memory.
  template <class Pool>
  unsigned take(Pool& pool, const Identity& id, unsigned n, void** out) noexcept {
    unsigned got = 0;
    while (got < n) {
      SlabMeta* m = partial_;
      if (m == nullptr) {
        m = pool.acquire(id.kind, id.owner, id.cls, id.block_size);
        if (m == nullptr) break;
        ++slabs_;
        link(m);
      }
      unsigned took = 0;
      for (FreeNode* f = m->free; f != nullptr && got < n; f = m->free) {
        m->free = L::load_next(f);
        out[got++] = f;
        ++took;
      }
      while (got < n && m->carved < m->capacity) {
        out[got++] = m->base + std::size_t{m->carved++} * m->block_size;
        ++took;
      }
      m->used.store(m->used.load(std::memory_order_relaxed) + took, std::memory_order_relaxed);
      if (m->free == nullptr && m->carved == m->capacity) unlink(m);  // full
    }
    return got;
  }

  // Gives a block back to its slab; a slab whose last block returns goes back
  // to the pool.
  template <class Pool>
  void give(Pool& pool, SlabMeta* m, void* block) noexcept {
    auto* f = static_cast<FreeNode*>(block);
    L::store_next(f, m->free);
    m->free = f;
    const std::uint32_t used = m->used.load(std::memory_order_relaxed) - 1;
    m->used.store(used, std::memory_order_relaxed);
    if (used == 0) {
      if (m->listed) unlink(m);
      --slabs_;
      pool.release(m);
    } else if (!m->listed) {
      link(m);
    }
  }

  std::uint64_t slabs() const noexcept { return slabs_; }

 private:
  void link(SlabMeta* m) noexcept {
    m->prev = nullptr;
    m->next = partial_;
    if (partial_ != nullptr) partial_->prev = m;
    partial_ = m;
    m->listed = true;
  }
  void unlink(SlabMeta* m) noexcept {
    if (m->prev != nullptr) m->prev->next = m->next;
    else partial_ = m->next;
    if (m->next != nullptr) m->next->prev = m->prev;
    m->prev = m->next = nullptr;
    m->listed = false;
  }

  SlabMeta* partial_ = nullptr;
  std::uint64_t slabs_ = 0;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
