// MemoryResource: a std::pmr::memory_resource over an Allocator. pmr passes
// the size and alignment to do_deallocate, so frees stay sized.
#pragma once

#include <sydra/alloc/allocator.hpp>

#include <memory_resource>
#include <new>

namespace sydra::alloc {
inline namespace v1 {

class MemoryResource final : public std::pmr::memory_resource {
 public:
  explicit MemoryResource(Allocator a) noexcept : a_(a) {}
  Allocator allocator() const noexcept { return a_; }

 private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    void* p = a_.alloc(bytes == 0 ? 1 : bytes, align);  // pmr must return a unique pointer for 0
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    a_.free(p, bytes == 0 ? 1 : bytes, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    const auto* o = dynamic_cast<const MemoryResource*>(&other);
    return o != nullptr && o->a_ == a_;
  }

  Allocator a_;
};

}  // namespace v1
}  // namespace sydra::alloc
