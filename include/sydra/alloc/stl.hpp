// StlAllocator<T, Handle>: a standard allocator for std::vector, std::map and
// friends, in two forms (heap_ref.hpp):
//
//   StlAllocator<T>              over the type-erased Allocator (Handle defaults
//                                to Allocator): two pointers, one indirect call
//                                per allocate and per deallocate. For code that
//                                is handed an Allocator.
//     sa::StlAllocator<int>(h.allocator())
//
//   StlAllocator<T, Handle>      over a concrete heap, usually the handle itself
//                                (sa::AllocatorHandle, BasicAllocatorHandle<P>):
//                                one pointer; allocate and deallocate inline the
//                                handle's fast path, so a pooled allocation makes
//                                no indirect call (and no call at all once the
//                                compiler inlines allocate into the container).
//                                test/adapters/codegen_probe.cpp and
//                                check_codegen.py verify it in the generated
//                                code of optimised builds (docs/adapters.md).
//     sa::StlAllocator<int, sa::AllocatorHandle>(h)
//
// One template rather than two names, so that switching a container between
// the forms changes one template argument and nothing else: both forms have
// the same members, the same traits and the same equality.
//
// Frees are sized (the container passes n back), so no lookup is needed. A
// failed allocation throws std::bad_alloc, as the standard requires; a count
// whose byte size would exceed PTRDIFF_MAX throws std::bad_array_new_length
// (a std::bad_alloc), as std::allocator does. allocate(0) returns a unique
// block, as std::allocator does, by allocating one element (deallocate(p, 0)
// frees it the same way): the handle's own alloc(0) is nullptr.
//
// Equality: two adapters are equal iff they allocate from the same heap, so
// that either can free the other's blocks. For the concrete form that is the
// same handle object; for the erased form the same Allocator (context and
// table). A concrete adapter over h and an erased one over h.allocator() are
// equal too: both end at h.free, which takes any block of h. A concrete
// adapter converts explicitly to the erased form (same handle, now through
// the table); there is no way back, since an Allocator does not say which
// type its context is.
//
// Propagation: both forms propagate on copy assignment, move assignment and
// swap, copy construction keeps the source's heap, and is_always_equal is
// false. The adapter is a pointer to a long-lived heap, and a block must go
// back to the heap it came from (checked builds abort on a pooled block freed
// through another handle), so the allocator travels with the contents:
//   - swap is O(1) and defined for any two containers; without propagation,
//     swapping containers over two different handles is undefined behaviour;
//   - move assignment steals the buffer and is noexcept whatever the handles
//     (std::vector<std::vector<T, A>> can then move on reallocation); without
//     propagation, unequal handles mean an element-wise copy into the target;
//   - copy assignment follows the same rule, so that "c = d" leaves c exactly
//     as a copy of d would be, heap included; a container that must stay on
//     its own heap assigns elements instead (c.assign(d.begin(), d.end())).
//   - is_always_equal is false: two handles are never interchangeable (each
//     counts its own live blocks, and owns its own slabs), even in the default
//     and mimalloc modes, whose blocks another handle's free could release.
// Code that wants the opposite (pmr's model: the allocator stays with the
// container) has it with BasicMemoryResource (pmr.hpp) and
// std::pmr::polymorphic_allocator, whose traits the standard fixes.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/heap_ref.hpp>

#include <cstddef>
#include <new>
#include <type_traits>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

template <class T, ContractHeap Handle = Allocator>
class StlAllocator {
 public:
  using value_type = T;
  using handle_type = Handle;
  // The type-erased form (over Allocator), or the concrete one.
  static constexpr bool erased = std::is_same_v<Handle, Allocator>;

  // See the top of this file for why each is what it is.
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;

  // The erased form is made from an Allocator, the concrete form from a
  // Handle&; either heap must outlive every container that allocates from it.
  // (One constructor over the form's source type rather than two constrained
  // ones: Clang 14 instantiates a constrained member whose constraint fails
  // in an explicit instantiation of the class.)
  using source_type = typename detail::HeapRef<Handle>::Source;
  explicit StlAllocator(source_type heap) noexcept : ref_(heap) {}

  // Rebinding, as containers do for their nodes: the same heap, another T.
  template <class U>
  StlAllocator(const StlAllocator<U, Handle>& other) noexcept : ref_(other.ref_) {}

  // Concrete to erased: the same handle, now through the Allocator's table.
  // Explicit, because it gives up the inlined fast path.
  template <class U, class H>
    requires(erased && !std::is_same_v<H, Allocator>)
  explicit StlAllocator(const StlAllocator<U, H>& other) noexcept : ref_(other.allocator()) {}

  SYDRA_FAST_PATH T* allocate(std::size_t n) {
    if (SYDRA_UNLIKELY(n > max_request / sizeof(T))) detail::throw_bad_array_new_length();
    void* p = ref_.alloc(bytes(n), alignof(T));
    if (SYDRA_UNLIKELY(p == nullptr)) detail::throw_bad_alloc();
    return static_cast<T*>(p);
  }
  SYDRA_FAST_PATH void deallocate(T* p, std::size_t n) noexcept { ref_.free(p, bytes(n), alignof(T)); }

  // A copy-constructed container allocates from the source's heap.
  StlAllocator select_on_container_copy_construction() const noexcept { return *this; }

  // The heap, type-erased (the concrete form's handle through its table).
  Allocator allocator() const noexcept { return ref_.erased(); }
  // The concrete form's handle (a template only so that the erased form,
  // which has none, can still be instantiated explicitly).
  template <class H = Handle>
    requires(std::is_same_v<H, Handle> && !erased)
  H& handle() const noexcept {
    return ref_.handle();
  }

  template <class U, class H>
  friend bool operator==(const StlAllocator& x, const StlAllocator<U, H>& y) noexcept {
    if constexpr (!erased && std::is_same_v<H, Handle>) {
      return &x.handle() == &y.handle();
    } else {
      // Across forms, or between two erased adapters: the same context and
      // table. Concrete adapters over different handle types never compare
      // equal (their tables differ).
      return x.allocator() == y.allocator();
    }
  }

 private:
  template <class, ContractHeap>
  friend class StlAllocator;

  // n == 0 allocates one element, so that allocate(0) is a unique block.
  SYDRA_FAST_PATH static constexpr std::size_t bytes(std::size_t n) noexcept { return (n == 0 ? 1 : n) * sizeof(T); }

  detail::HeapRef<Handle> ref_;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
