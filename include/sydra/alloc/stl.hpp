// StlAllocator<T>: a standard allocator over an Allocator, for std::vector,
// std::map and friends. Frees are sized, so no lookup is needed; a failed
// allocation throws std::bad_alloc, as the standard requires.
#pragma once

#include <sydra/alloc/allocator.hpp>

#include <new>

namespace sydra::alloc {
inline namespace v1 {

template <class T>
class StlAllocator {
 public:
  using value_type = T;

  explicit StlAllocator(Allocator a) noexcept : a_(a) {}
  template <class U>
  StlAllocator(const StlAllocator<U>& other) noexcept : a_(other.allocator()) {}

  T* allocate(std::size_t n) {
    T* p = a_.alloc_array<T>(n);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void deallocate(T* p, std::size_t n) noexcept { a_.free_array(p, n); }

  Allocator allocator() const noexcept { return a_; }
  template <class U>
  friend bool operator==(const StlAllocator& x, const StlAllocator<U>& y) noexcept {
    return x.allocator() == y.allocator();
  }

 private:
  Allocator a_;
};

}  // namespace v1
}  // namespace sydra::alloc
