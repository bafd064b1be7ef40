// Pagemap: from any address to the metadata of the sydra-alloc slab that
// holds it, in O(1) and without reading memory that sydra-alloc does not own
// (the seed read an 8-byte header before every block instead).
//
// One process-wide flat table keyed by address >> 16: one entry per 64 KiB
// slab of the 47-bit user address space, 2^31 entries, 16 GiB of address
// space reserved (MAP_NORESERVE) at the first insert. Only the table pages
// that cover live slabs are ever touched: 4 KiB of table per 32 MiB of slabs.
// A free thus makes one load from the pointer to its SlabMeta (the table's
// base is a static, read independently of the pointer) instead of a root, a
// leaf and then the entry.
//
// Where 16 GiB of address space cannot be had (ulimit -v, an RLIMIT_AS,
// a tool with a small address space), the first insert falls back to the
// two-level radix table the flat one replaced (a static root, 512 KiB leaves
// mapped on demand) for the rest of the process: the flat table's null base
// pointer, the branch every lookup has anyway, sends lookups there. Either
// table is chosen once and never changes, so no entry is ever in both.
//
// Entries are published with release and read with acquire, so a slab's
// metadata is fully written before any thread finds it. Every slab of a
// reserved chunk is published when the chunk is reserved, so an entry
// changes only when a whole chunk comes or goes. Nothing is ever unmapped.
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
  static constexpr unsigned address_bits = 47;  // x86-64 / AArch64 user space (without 5-level paging's opt-in)
  static constexpr unsigned key_bits = address_bits - slab_shift;
  static constexpr unsigned leaf_bits = 16;  // the fallback's
  static constexpr unsigned root_bits = key_bits - leaf_bits;
  static_assert((std::size_t{1} << slab_shift) == slab_bytes, "one pagemap entry per slab");

  using Entry = std::atomic<SlabMeta*>;
  using Leaf = Entry[std::size_t{1} << leaf_bits];
  static constexpr std::size_t flat_bytes = sizeof(Entry) << key_bits;  // 16 GiB of address space

  // Null for every address that is not inside a reserved chunk's slab,
  // before any insert too (the malloc library may call it before any static
  // constructor ran: every static here is constant-initialized).
  SYDRA_FAST_PATH static SlabMeta* lookup(const void* p) noexcept {
    const std::uintptr_t key = reinterpret_cast<std::uintptr_t>(p) >> slab_shift;
    Entry* flat = flat_.load(std::memory_order_acquire);
    if (SYDRA_LIKELY(flat != nullptr)) {
      if (SYDRA_UNLIKELY(key >> key_bits)) return nullptr;
      return flat[key].load(std::memory_order_acquire);
    }
    return lookup_radix(key);
  }

  // lookup()'s fast half, for the free fast path: false (m untouched) when
  // the flat table is not in use (not yet, or the radix table instead), so
  // that the caller's slow route, not this, makes the call to the radix
  // lookup, and the fast path stays free of calls that return.
  SYDRA_FAST_PATH static bool lookup_flat(const void* p, SlabMeta*& m) noexcept {
    const std::uintptr_t key = reinterpret_cast<std::uintptr_t>(p) >> slab_shift;
    Entry* flat = flat_.load(std::memory_order_acquire);
    if (SYDRA_UNLIKELY(flat == nullptr)) return false;
    m = SYDRA_LIKELY(!(key >> key_bits)) ? flat[key].load(std::memory_order_acquire) : nullptr;
    return true;
  }

  // Publishes `count` consecutive slabs starting at base (slab-aligned) with
  // metas[0..count). False when the address is out of range or the table
  // cannot be mapped: the caller treats it as out of memory (nothing is
  // published).
  static bool insert(void* base, std::size_t count, SlabMeta* metas) noexcept;
  static void erase(void* base, std::size_t count) noexcept;

  // Which table the process uses: true once the flat one is reserved, false
  // before the first insert and after a fallback to the radix table.
  static bool flat() noexcept { return flat_.load(std::memory_order_acquire) != nullptr; }

 private:
  static constexpr std::uintptr_t leaf_mask = (std::uintptr_t{1} << leaf_bits) - 1;
  static SYDRA_SLOW_PATH SlabMeta* lookup_radix(std::uintptr_t key) noexcept;
  static Entry* flat_table() noexcept;
  static Leaf* leaf_for(std::uintptr_t key) noexcept;

  static std::atomic<Entry*> flat_;
  static std::atomic<int> choice_;  // Choice in lib/pagemap.cpp
  static std::atomic<Leaf*> root_[std::size_t{1} << root_bits];
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
