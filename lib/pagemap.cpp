// The Pagemap's storage: a static root (zero pages until touched) and leaves
// mapped on demand. Leaves are never unmapped, so a lookup racing with a slab
// release reads a stale or null entry, never unmapped memory.
#include <sydra/alloc/slab/pagemap.hpp>

#include <sys/mman.h>

namespace sydra::alloc {
inline namespace v1 {

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

bool Pagemap::insert(void* base, SlabHeader* header) noexcept {
  const std::uintptr_t key = reinterpret_cast<std::uintptr_t>(base) >> slab_shift;
  if (key >> (root_bits + leaf_bits)) return false;
  Leaf* leaf = leaf_for(key);
  if (leaf == nullptr) return false;
  (*leaf)[key & leaf_mask].store(header, std::memory_order_release);
  return true;
}

void Pagemap::erase(void* base) noexcept {
  const std::uintptr_t key = reinterpret_cast<std::uintptr_t>(base) >> slab_shift;
  Leaf* leaf = root_[key >> leaf_bits].load(std::memory_order_acquire);
  if (leaf != nullptr) (*leaf)[key & leaf_mask].store(nullptr, std::memory_order_release);
}

}  // namespace v1
}  // namespace sydra::alloc
