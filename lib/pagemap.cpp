// The Pagemap's storage: a static root (zero pages until touched) and leaves
// mapped on demand. Leaves are never unmapped, so a lookup racing with a
// chunk's release reads a stale or null entry, never unmapped memory.
#include <sydra/alloc/slab/pagemap.hpp>
#include <sydra/alloc/slab/slab_meta.hpp>

#include <sys/mman.h>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

std::atomic<Pagemap::Leaf*> Pagemap::root_[std::size_t{1} << Pagemap::root_bits];

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
  if ((first + count - 1) >> (root_bits + leaf_bits)) return false;
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
  for (std::size_t i = 0; i < count; ++i) {
    const std::uintptr_t key = first + i;
    Leaf* leaf = root_[key >> leaf_bits].load(std::memory_order_acquire);
    if (leaf != nullptr) (*leaf)[key & leaf_mask].store(nullptr, std::memory_order_release);
  }
}

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
