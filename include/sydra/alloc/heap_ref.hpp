// How the standard-library adapters (stl.hpp, pmr.hpp) reach the heap behind
// them, in their two forms:
//
//   Handle = Allocator   the type-erased view, held by value (two pointers).
//                        Every call goes through its table: one indirect call.
//   Handle = H           a heap whose type is known at compile time, usually a
//                        BasicAllocatorHandle<P> (AllocatorHandle included),
//                        held by pointer. Calls go straight to H::alloc and
//                        H::free, which the handle declares SYDRA_FAST_PATH,
//                        so its whole pooled fast path is inlined into the
//                        adapter, and through it into the container.
//
// docs/adapters.md explains the choice between the forms.
#pragma once

#include <sydra/alloc/allocator.hpp>

#include <concepts>
#include <cstddef>
#include <new>
#include <type_traits>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// A heap with the four members of the Allocator contract, as Allocator::of
// erases it: what either adapter form can sit on. Allocator itself is one
// (its members forward through the table); any other type is the concrete form.
template <class H>
concept ContractHeap = std::same_as<H, std::remove_cvref_t<H>> && requires(H& h, void* p, std::size_t n) {
  { h.alloc(n, n) } noexcept -> std::same_as<void*>;
  { h.resize(p, n, n, n) } noexcept -> std::same_as<bool>;
  { h.remap(p, n, n, n) } noexcept -> std::same_as<void*>;
  { h.free(p, n, n) } noexcept;
};

// The concrete form: any contract heap but the type-erased Allocator.
template <class H>
concept ConcreteHeap = ContractHeap<H> && !std::same_as<H, Allocator>;

namespace detail {

// Out of line and cold, so that an adapter's inlined fast path carries a
// conditional jump here rather than the exception machinery.
[[noreturn]] SYDRA_SLOW_PATH inline void throw_bad_alloc() { throw std::bad_alloc(); }
[[noreturn]] SYDRA_SLOW_PATH inline void throw_bad_array_new_length() { throw std::bad_array_new_length(); }

// The concrete form: a pointer to the heap; calls are direct, and inlined
// wherever the heap's members are. (Constrained on ContractHeap, not
// ConcreteHeap: the Allocator specialization below must satisfy the primary.)
template <ContractHeap Handle>
class HeapRef {
 public:
  using Source = Handle&;  // what an adapter of this form is made from
  explicit HeapRef(Handle& h) noexcept : h_(&h) {}

  SYDRA_FAST_PATH void* alloc(std::size_t len, std::size_t align) const noexcept { return h_->alloc(len, align); }
  SYDRA_FAST_PATH void free(void* mem, std::size_t len, std::size_t align) const noexcept {
    h_->free(mem, len, align);
  }

  Handle& handle() const noexcept { return *h_; }
  // The same heap, type-erased: what the erased form would hold for it.
  Allocator erased() const noexcept { return Allocator::of(*h_); }

  friend bool operator==(const HeapRef&, const HeapRef&) = default;  // the same heap

 private:
  Handle* h_;
};

// The erased form: the Allocator itself; every call is indirect.
template <>
class HeapRef<Allocator> {
 public:
  using Source = Allocator;
  explicit HeapRef(Allocator a) noexcept : a_(a) {}

  SYDRA_FAST_PATH void* alloc(std::size_t len, std::size_t align) const noexcept { return a_.alloc(len, align); }
  SYDRA_FAST_PATH void free(void* mem, std::size_t len, std::size_t align) const noexcept {
    a_.free(mem, len, align);
  }

  Allocator erased() const noexcept { return a_; }

  friend bool operator==(const HeapRef&, const HeapRef&) = default;

 private:
  Allocator a_;
};

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
