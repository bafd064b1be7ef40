// A malloc whose handle calls malloc while it is being built, as one built
// on an older C library does when sysconf allocates: libreentrant-malloc.so,
// for the malloc-reentry test. Its fallback heap's constructor (which runs
// inside the handle's) calls malloc, calloc, realloc, malloc_usable_size and
// free of the library it belongs to, checks what they return, and says on
// stderr how many blocks the bootstrap arena served. Without the re-entry
// guard the first of those calls waits for the build it is part of, forever.
#include <sydra/alloc/malloc_override.hpp>
#include <sydra/alloc/modes.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>

namespace {

namespace sa = sydra::alloc;

void say(const char* text) { static_cast<void>(::write(2, text, std::strlen(text))); }

struct SysconfLikeHeap : sa::LibcHeap {
  SysconfLikeHeap() : SysconfLikeHeap(Options{}) {}
  explicit SysconfLikeHeap(const Options& o) : sa::LibcHeap(o) {
    const std::size_t before = sa::detail::BootstrapArena::served();
    auto* a = static_cast<unsigned char*>(std::malloc(100));
    auto* z = static_cast<unsigned char*>(std::calloc(4, 64));
    bool ok = a != nullptr && z != nullptr && ::malloc_usable_size(a) >= 100;
    for (int i = 0; ok && i < 256; ++i) ok = z[i] == 0;
    if (ok) {
      std::memset(a, 0x5a, 100);
      a = static_cast<unsigned char*>(std::realloc(a, 300));
      ok = a != nullptr;
      for (int i = 0; ok && i < 100; ++i) ok = a[i] == 0x5a;
    }
    std::free(a);
    std::free(z);
    char line[160];
    std::snprintf(line, sizeof line, "reentrant-malloc: %s; %zu blocks from the bootstrap arena while building\n",
                  ok ? "re-entrant calls served" : "re-entrant calls FAILED",
                  sa::detail::BootstrapArena::served() - before);
    say(line);
  }
};

struct ReentrantPolicy : sa::MallocPolicy<sa::ConfiguredPolicy> {
  static constexpr const char* name = "reentrant-malloc";
  using Fallback = sa::MallocFallback<SysconfLikeHeap>;
};

}  // namespace

SYDRA_ALLOC_DEFINE_MALLOC(ReentrantPolicy);
