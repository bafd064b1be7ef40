// The Pagemap's storage: the flat table, reserved at the first insert, or,
// where it cannot be, a static root (zero pages until touched) and leaves
// mapped on demand. Nothing is ever unmapped, so a lookup racing with a
// chunk's release reads a stale or null entry, never unmapped memory.
#include <sydra/alloc/slab/pagemap.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

#include <sched.h>
#include <sys/mman.h>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

namespace {
enum Choice : int { undecided, deciding, use_flat, use_radix };
}  // namespace

std::atomic<Pagemap::Entry*> Pagemap::flat_{nullptr};
std::atomic<int> Pagemap::choice_{undecided};
std::atomic<Pagemap::Leaf*> Pagemap::root_[std::size_t{1} << Pagemap::root_bits];

SlabMeta* Pagemap::lookup_radix(std::uintptr_t key) noexcept {
  if (key >> key_bits) return nullptr;
  Leaf* leaf = root_[key >> leaf_bits].load(std::memory_order_acquire);
  if (leaf == nullptr) return nullptr;
  return (*leaf)[key & leaf_mask].load(std::memory_order_acquire);
}

// Decided once, by the first insert of the process: the flat table if its
// address space can be had, else the radix table for good. Inserts run under
// their pool's lock, and fork() takes every pool's lock first, so no child
// inherits a decision half made.
Pagemap::Entry* Pagemap::flat_table() noexcept {
  int c = choice_.load(std::memory_order_acquire);
  while (c != use_flat && c != use_radix) {
    if (c == undecided && choice_.compare_exchange_strong(c, deciding, std::memory_order_acq_rel)) {
      void* mem = ::mmap(nullptr, flat_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                         -1, 0);
      if (mem != MAP_FAILED) {
        // Where THP is "always", one touched entry would cost a 2 MiB page
        // of RSS instead of 4 KiB; lookups of live slabs touch few pages.
        ::madvise(mem, flat_bytes, MADV_NOHUGEPAGE);
        flat_.store(static_cast<Entry*>(mem), std::memory_order_release);
      }
      c = mem != MAP_FAILED ? use_flat : use_radix;
      choice_.store(c, std::memory_order_release);
      break;
    }
    ::sched_yield();  // another pool's first insert is deciding: a single mmap
    c = choice_.load(std::memory_order_acquire);
  }
  return c == use_flat ? flat_.load(std::memory_order_acquire) : nullptr;
}

Pagemap::Leaf* Pagemap::leaf_for(std::uintptr_t key) noexcept {
  std::atomic<Leaf*>& slot = root_[key >> leaf_bits];
  Leaf* leaf = slot.load(std::memory_order_acquire);
  if (leaf != nullptr) return leaf;
  void* mem = ::mmap(nullptr, sizeof(Leaf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  auto* fresh = static_cast<Leaf*>(mem);  // zero-filled: every entry null
  if (slot.compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel)) return fresh;
  ::munmap(mem, sizeof(Leaf));  // another thread mapped it first
  return leaf;
}

bool Pagemap::insert(void* base, std::size_t count, SlabMeta* metas) noexcept {
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(base) >> slab_shift;
  if (count == 0 || (first + count - 1) >> key_bits) return false;
  if (Entry* flat = flat_table()) {
    for (std::size_t i = 0; i < count; ++i) flat[first + i].store(&metas[i], std::memory_order_release);
    return true;
  }
  for (std::size_t i = 0; i < count; ++i)  // map every leaf first: all or nothing
    if (leaf_for(first + i) == nullptr) return false;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uintptr_t key = first + i;
    (*root_[key >> leaf_bits].load(std::memory_order_acquire))[key & leaf_mask].store(&metas[i],
                                                                                   std::memory_order_release);
  }
  return true;
}

void Pagemap::erase(void* base, std::size_t count) noexcept {
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(base) >> slab_shift;
  if (Entry* flat = flat_.load(std::memory_order_acquire)) {
    for (std::size_t i = 0; i < count; ++i) flat[first + i].store(nullptr, std::memory_order_release);
    return;
  }
  for (std::size_t i = 0; i < count; ++i) {
    const std::uintptr_t key = first + i;
    Leaf* leaf = root_[key >> leaf_bits].load(std::memory_order_acquire);
    if (leaf != nullptr) (*leaf)[key & leaf_mask].store(nullptr, std::memory_order_release);
  }
}

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
