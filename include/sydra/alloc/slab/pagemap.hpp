// Pagemap: from any address to the metadata of the sydra-alloc slab that
// holds it, in O(1) and without reading memory that sydra-alloc does not own
// (the seed read an 8-byte header before every block instead).
//
// One process-wide two-level radix table keyed by address >> 16 (one entry
// per 64 KiB slab). The root is static; a leaf (512 KiB of virtual memory,
// touched only where slabs live) is mapped the first time a slab falls in its
// range and never unmapped. Entries are published with release and read with
// acquire, so a slab's metadata is fully written before any thread finds it.
// Every slab of a reserved chunk is published when the chunk is reserved, so
// an entry changes only when a whole chunk comes or goes.
#pragma once

#include <sydra/alloc/slab/size_classes.hpp>

#include <atomic>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

struct SlabMeta;

class Pagemap {
 public:
  static constexpr unsigned slab_shift = 16;
  static constexpr unsigned address_bits = 48;  // x86-64 / AArch64 user space
  static constexpr unsigned leaf_bits = 16;
  static constexpr unsigned root_bits = address_bits - slab_shift - leaf_bits;
  static_assert((std::size_t{1} << slab_shift) == slab_bytes, "one pagemap entry per slab");

  using Leaf = std::atomic<SlabMeta*>[std::size_t{1} << leaf_bits];

  // Null for every address that is not inside a reserved chunk's slab.
  SYDRA_FAST_PATH static SlabMeta* lookup(const void* p) noexcept {
    const std::uintptr_t key = reinterpret_cast<std::uintptr_t>(p) >> slab_shift;
    if (SYDRA_UNLIKELY(key >> (root_bits + leaf_bits))) return nullptr;
    Leaf* leaf = root_[key >> leaf_bits].load(std::memory_order_acquire);
    if (leaf == nullptr) return nullptr;
    return (*leaf)[key & leaf_mask].load(std::memory_order_acquire);
  }

  // Publishes `count` consecutive slabs starting at base (slab-aligned) with
  // metas[0..count). False when the address is out of range or a leaf cannot
  // be mapped: the caller treats it as out of memory (nothing is published).
  static bool insert(void* base, std::size_t count, SlabMeta* metas) noexcept;
  static void erase(void* base, std::size_t count) noexcept;

 private:
  static constexpr std::uintptr_t leaf_mask = (std::uintptr_t{1} << leaf_bits) - 1;
  static Leaf* leaf_for(std::uintptr_t key) noexcept;
  static std::atomic<Leaf*> root_[std::size_t{1} << root_bits];
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
