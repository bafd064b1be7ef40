// Run under Valgrind by tools/test-all.sh, which expects memcheck to report
// the read below: freed pooled blocks are marked FREELIKE, so a use-after-free
// inside a slab is an "Invalid read" even though the slab itself is live.
#include <sydra/alloc.hpp>

#include <cstdio>

namespace sa = sydra::alloc;

int main() {
  static_assert(sa::checked, "Valgrind annotations are compiled into checked builds only");
  sa::BasicAllocatorHandle<sa::SmallPoolPolicy> h;
  auto* p = static_cast<volatile char*>(h.alloc(48, 8));
  p[0] = 1;
  h.free(const_cast<char*>(p), 48, 8);
  const int stale = p[40];  // use after free, inside the pool
  std::printf("read %d after free\n", stale);
  return 0;
}
