// mimalloc mode with the system's libmimalloc, which is dlopen'ed (it would
// replace malloc for the whole process if it were linked): the library is
// loaded when a MimallocHeap is built, not at its first allocation. A handle
// is built before the threads that use it; loaded later, the dlopen could
// race a pthread_create, and glibc would leave the new thread's copy of
// mimalloc's thread-local heap pointer unset (its first mi_malloc then
// crashed on a null heap: seen once in the stress test of mimalloc mode).
// A process of its own, so that nothing before it has loaded mimalloc.
#include <sydra/alloc/heap/mimalloc_heap.hpp>

#include <gtest/gtest.h>

#include <dlfcn.h>

namespace sa = sydra::alloc;

namespace {

bool mimalloc_loaded() {
  void* lib = ::dlopen(SYDRA_MIMALLOC_DLOPEN, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (lib == nullptr) return false;
  ::dlclose(lib);  // drops only the reference RTLD_NOLOAD took
  return true;
}

TEST(MimallocHeap, LoadsMimallocWhenBuiltBeforeAnyAllocation) {
  ASSERT_FALSE(mimalloc_loaded()) << "something loaded " << SYDRA_MIMALLOC_DLOPEN << " before the heap was built";
  sa::MimallocHeap heap;
  EXPECT_TRUE(mimalloc_loaded());
  void* p = heap.alloc(100, 16);  // and it serves
  ASSERT_NE(p, nullptr);
  heap.free(p, 100, 16);
}

}  // namespace
