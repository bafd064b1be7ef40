// Allocator: the type-erased view that engine code passes around, as the
// seed's std.mem.Allocator is (docs/seed.md). It is two pointers, copyable,
// and does not own the heap behind it (BasicAllocatorHandle does).
//
// Contract, the same for every mode and policy:
//   alloc(len, align)          len 0 -> nullptr; align 0 counts as 1; align not a
//                              power of two, len > PTRDIFF_MAX or out of memory
//                              -> nullptr, never an abort.
//   resize(p, len, align, n)   true only if the block already holds n bytes in place.
//   remap(p, len, align, n)    may move; nullptr means "allocate, copy, free
//                              yourself" and the old block stays valid.
//   free(p, len, align)        sized: len and align are those of the alloc (or of
//                              the last successful resize/remap). len 0 is a no-op.
// Every call is thread-safe, and a block may be freed by any thread.
#pragma once

#include <sydra/alloc/request.hpp>

#include <cstddef>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

class Allocator {
 public:
  struct VTable {
    void* (*alloc)(void* ctx, std::size_t len, std::size_t align) noexcept;
    bool (*resize)(void* ctx, void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept;
    void* (*remap)(void* ctx, void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept;
    void (*free)(void* ctx, void* mem, std::size_t len, std::size_t align) noexcept;
  };

  constexpr Allocator(void* ctx, const VTable* vtable) noexcept : ctx_(ctx), vtable_(vtable) {}

  // Erases any heap with the four contract members; the heap must outlive
  // every copy of the Allocator.
  template <class Heap>
  static Allocator of(Heap& heap) noexcept {
    return Allocator(&heap, &vtable_for<Heap>);
  }

  void* alloc(std::size_t len, std::size_t align = alignof(std::max_align_t)) const noexcept {
    return vtable_->alloc(ctx_, len, align);
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) const noexcept {
    return vtable_->resize(ctx_, mem, len, align, new_len);
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) const noexcept {
    return vtable_->remap(ctx_, mem, len, align, new_len);
  }
  void free(void* mem, std::size_t len, std::size_t align = alignof(std::max_align_t)) const noexcept {
    vtable_->free(ctx_, mem, len, align);
  }

  // Typed helpers. create returns nullptr when memory is short; a throwing
  // constructor gives the memory back and rethrows.
  template <class T, class... Args>
  T* create(Args&&... args) const {
    void* mem = alloc(sizeof(T), alignof(T));
    if (mem == nullptr) return nullptr;
    if constexpr (std::is_nothrow_constructible_v<T, Args...>) {
      return ::new (mem) T(std::forward<Args>(args)...);
    } else {
      try {
        return ::new (mem) T(std::forward<Args>(args)...);
      } catch (...) {
        free(mem, sizeof(T), alignof(T));
        throw;
      }
    }
  }

  template <class T>
  void destroy(T* obj) const noexcept {
    if (obj == nullptr) return;
    obj->~T();
    free(obj, sizeof(T), alignof(T));
  }

  // An uninitialised array of n T; nullptr when n * sizeof(T) overflows or
  // memory is short. Free it with free_array(p, n).
  template <class T>
  T* alloc_array(std::size_t n) const noexcept {
    if (n == 0 || n > max_request / sizeof(T)) return nullptr;
    return static_cast<T*>(alloc(n * sizeof(T), alignof(T)));
  }

  template <class T>
  void free_array(T* mem, std::size_t n) const noexcept {
    if (mem != nullptr && n != 0) free(mem, n * sizeof(T), alignof(T));
  }

  void* context() const noexcept { return ctx_; }
  friend bool operator==(const Allocator&, const Allocator&) = default;

 private:
  template <class Heap>
  static constexpr VTable vtable_for{
      [](void* ctx, std::size_t len, std::size_t align) noexcept -> void* {
        return static_cast<Heap*>(ctx)->alloc(len, align);
      },
      [](void* ctx, void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept -> bool {
        return static_cast<Heap*>(ctx)->resize(mem, len, align, new_len);
      },
      [](void* ctx, void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept -> void* {
        return static_cast<Heap*>(ctx)->remap(mem, len, align, new_len);
      },
      [](void* ctx, void* mem, std::size_t len, std::size_t align) noexcept {
        static_cast<Heap*>(ctx)->free(mem, len, align);
      },
  };

  void* ctx_;
  const VTable* vtable_;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
