// BasicMemoryResource<Handle>: a std::pmr::memory_resource over a heap, in the
// two forms of heap_ref.hpp:
//
//   MemoryResource                     over the type-erased Allocator
//   (= BasicMemoryResource<Allocator>)   sa::MemoryResource res(h.allocator());
//                                      pmr's virtual call to do_allocate, then
//                                      the Allocator's indirect call.
//   BasicMemoryResource<Handle>        over a concrete handle
//                                        sa::BasicMemoryResource<sa::AllocatorHandle> res(h);
//                                      pmr's virtual call and no second one:
//                                      do_allocate and do_deallocate inline the
//                                      handle's fast path. The class is final,
//                                      so a call through the resource's own
//                                      type is devirtualised and inlined whole.
//
// pmr passes the size and alignment to do_deallocate, so frees stay sized.
// A request of 0 bytes allocates 1 (pmr must return a unique pointer; the
// handle's alloc(0) is nullptr), and its deallocate frees 1 the same way.
// Failures throw std::bad_alloc, including an alignment that is not a power
// of two.
//
// Equality (do_is_equal): two sydra resources are equal iff they allocate
// from the same heap, whatever their forms: a concrete resource over h and an
// erased one over h.allocator() are equal, since both end at h.free. A
// resource of any other kind is never equal to a sydra one.
//
// Propagation is std::pmr::polymorphic_allocator's, which the standard fixes:
// nothing propagates, so a container stays on its resource for life (move
// assignment and swap between containers on unequal resources copy element
// by element, or are undefined for swap), and a copy-constructed container
// allocates from std::pmr::get_default_resource(), not from the source's
// resource, unless it is given one. StlAllocator (stl.hpp) is the
// propagating alternative.
#pragma once

#include <sydra/alloc/allocator.hpp>
#include <sydra/alloc/heap_ref.hpp>

#include <cstddef>
#include <memory_resource>
#include <type_traits>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

namespace detail {

// What both forms share: the heap as an Allocator, so that do_is_equal can
// compare any two sydra resources without knowing their handle types.
class HeapResource : public std::pmr::memory_resource {
 public:
  // The heap, type-erased (a concrete resource's handle through its table).
  Allocator allocator() const noexcept { return heap_; }

 protected:
  explicit HeapResource(Allocator heap) noexcept : heap_(heap) {}

 private:
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept final {
    if (this == &other) return true;
    const auto* o = dynamic_cast<const HeapResource*>(&other);
    return o != nullptr && o->heap_ == heap_;
  }

  Allocator heap_;
};

}  // namespace detail

template <ContractHeap Handle = Allocator>
class BasicMemoryResource final : public detail::HeapResource {
 public:
  using handle_type = Handle;
  static constexpr bool erased = std::is_same_v<Handle, Allocator>;

  // Made from an Allocator (erased) or a Handle& (concrete), as StlAllocator
  // is; the heap must outlive every container that allocates from it.
  using source_type = typename detail::HeapRef<Handle>::Source;
  explicit BasicMemoryResource(source_type heap) noexcept
      : HeapResource(detail::HeapRef<Handle>(heap).erased()), ref_(heap) {}

  // The concrete form's handle (see StlAllocator::handle).
  template <class H = Handle>
    requires(std::is_same_v<H, Handle> && !erased)
  H& handle() const noexcept {
    return ref_.handle();
  }

 private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    void* p = ref_.alloc(bytes == 0 ? 1 : bytes, align);
    if (SYDRA_UNLIKELY(p == nullptr)) detail::throw_bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    ref_.free(p, bytes == 0 ? 1 : bytes, align);
  }

  detail::HeapRef<Handle> ref_;
};

// The type-erased resource, as it always was.
using MemoryResource = BasicMemoryResource<Allocator>;

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
