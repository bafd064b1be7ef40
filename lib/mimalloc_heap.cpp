// The only file that includes mimalloc.h: consumers of sydra-alloc never need it.
//
// Debian's libmimalloc.so is built with MI_OVERRIDE: linking it replaces
// malloc/free for the whole process, which would turn the "default" mode (and
// every glibc comparison) into mimalloc in disguise. So when the system
// library is used, it is loaded privately (dlopen RTLD_LOCAL: its malloc never
// enters the global symbol scope) and only the mi_* entry points are taken
// from it. The wrap build (override=false) is linked directly.
#include <sydra/alloc/heap/mimalloc_heap.hpp>

#include <mimalloc.h>

#include <cstdint>
#include <cstring>

#if defined(SYDRA_MIMALLOC_DLOPEN)
#include <dlfcn.h>

#include <cstdio>
#endif

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {
namespace {

struct MimallocApi {
  decltype(&::mi_malloc_aligned) malloc_aligned = nullptr;
  decltype(&::mi_malloc_aligned_at) malloc_aligned_at = nullptr;
  decltype(&::mi_realloc_aligned) realloc_aligned = nullptr;
  decltype(&::mi_usable_size) usable_size = nullptr;
  decltype(&::mi_free) free = nullptr;

#if defined(SYDRA_MIMALLOC_DLOPEN)
  MimallocApi() noexcept {
    void* lib = ::dlopen(SYDRA_MIMALLOC_DLOPEN, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      std::fprintf(stderr, "sydra-alloc: mimalloc mode cannot load %s (%s); every allocation will fail\n",
                   SYDRA_MIMALLOC_DLOPEN, ::dlerror());
      return;
    }
    load(lib, malloc_aligned, "mi_malloc_aligned");
    load(lib, malloc_aligned_at, "mi_malloc_aligned_at");
    load(lib, realloc_aligned, "mi_realloc_aligned");
    load(lib, usable_size, "mi_usable_size");
    load(lib, free, "mi_free");
    if (!malloc_aligned || !malloc_aligned_at || !realloc_aligned || !usable_size || !free) {
      std::fprintf(stderr, "sydra-alloc: %s lacks the mi_* API; every allocation will fail\n", SYDRA_MIMALLOC_DLOPEN);
      malloc_aligned = nullptr;
    }
  }
  template <class F>
  static void load(void* lib, F& fn, const char* name) noexcept {
    fn = reinterpret_cast<F>(::dlsym(lib, name));
  }
#else
  MimallocApi() noexcept
      : malloc_aligned(&::mi_malloc_aligned),
        malloc_aligned_at(&::mi_malloc_aligned_at),
        realloc_aligned(&::mi_realloc_aligned),
        usable_size(&::mi_usable_size),
        free(&::mi_free) {}
#endif
};

const MimallocApi& api() noexcept {
  static const MimallocApi a;
  return a;
}

// mimalloc 2.0.9 (Debian 12) returns blocks aligned to only half the request
// for a few power-of-two sizes (mi_malloc_aligned(256, 256) is 128-aligned).
// The _at variant takes the general path and is always right, so a
// misaligned result is redone through it.
bool misaligned(const void* p, std::size_t align) noexcept {
  return p != nullptr && reinterpret_cast<std::uintptr_t>(p) % align != 0;
}

}  // namespace

void mi_load() noexcept { (void)api(); }

void* mi_alloc(std::size_t len, std::size_t align) noexcept {
  const MimallocApi& mi = api();
  if (mi.malloc_aligned == nullptr) return nullptr;  // the library could not be loaded
  void* p = mi.malloc_aligned(len, align);
  if (SYDRA_UNLIKELY(misaligned(p, align))) {
    mi.free(p);
    p = mi.malloc_aligned_at(len, align, 0);
  }
  return p;
}

// mem came from mi_alloc, so the API is loaded. Over-aligned blocks move by
// alloc + copy + free, so that a failure (or the alignment bug above) never
// costs the old block.
void* mi_remap(void* mem, std::size_t align, std::size_t new_len) noexcept {
  const MimallocApi& mi = api();
  if (align <= alignof(std::max_align_t)) return mi.realloc_aligned(mem, new_len, align);
  const std::size_t old_usable = mi.usable_size(mem);
  if (old_usable >= new_len) return mem;
  void* p = mi_alloc(new_len, align);
  if (p == nullptr) return nullptr;
  std::memcpy(p, mem, old_usable);
  mi.free(mem);
  return p;
}

std::size_t mi_usable(const void* mem) noexcept { return api().usable_size(mem); }
void mi_release(void* mem) noexcept { api().free(mem); }

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
