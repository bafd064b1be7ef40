// The allocators sydra-alloc is compared with, as bench-alloc loads them,
// plus the ideal free list. Every adapter has the same three members:
//
//   void* alloc(std::size_t n, std::size_t align);
//   void  free(void* p, std::size_t n, std::size_t align);   // n, align as allocated
//   static bool available(std::string* why);                 // loaded and usable?
//
// How each peer gets into the process (see bench/README.md):
// - glibc is the process's own malloc. Nothing else may replace it: the
//   sydra fallback calls std::malloc, and a replaced malloc would silently
//   turn "sydra" and "glibc" into some other allocator. bench-alloc checks
//   at startup (check_process_malloc) and refuses to run otherwise.
// - mimalloc: Debian's libmimalloc.so.2 is an override build, so linking it
//   (or loading it RTLD_GLOBAL) would replace malloc for the whole process.
//   It is dlopen'ed RTLD_LOCAL and only the mi_* entry points are taken.
// - jemalloc: dlopen'ed RTLD_LOCAL too; malloc/free taken from its own
//   handle (its fast path), mallocx/sdallocx for other alignments. Its TLS
//   is initial-exec, which a dlopen'ed library can only get from the
//   static TLS surplus that glibc sizes at startup: the process must start
//   with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384, so bench-alloc
//   re-executes itself with it (reexec_for_static_tls) before anything else.
// - snmalloc (optional, -Dsnmalloc_src=DIR, which defines SYDRA_BENCH_SNMALLOC):
//   header-only, compiled into bench-alloc's loops' translation units and
//   called through snmalloc::alloc / snmalloc::dealloc, as the sydra handle
//   is, so that both fast paths get the same chance to inline. Only its
//   snmalloc.h is included, never its override/*.cc, so it does not define
//   malloc; check_process_malloc would catch it if it ever did.
#pragma once

#include "bench_common.hpp"

#include <dlfcn.h>
#include <unistd.h>

#if SYDRA_BENCH_SNMALLOC
#include <snmalloc/snmalloc.h>
#ifndef SYDRA_BENCH_SNMALLOC_SRC
#define SYDRA_BENCH_SNMALLOC_SRC "?"
#endif
#endif

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace sydra_bench {

inline constexpr const char* kMimallocSoname = "libmimalloc.so.2";
inline constexpr const char* kJemallocSoname = "libjemalloc.so.2";
inline constexpr const char* kStaticTlsTunable = "glibc.rtld.optional_static_tls";

// The file that defines the malloc every unqualified call in this process
// reaches: libc.so.6 normally, the preloaded library under LD_PRELOAD.
inline std::string malloc_provider() {
  Dl_info info{};
  void* sym = ::dlsym(RTLD_DEFAULT, "malloc");
  if (sym != nullptr && ::dladdr(sym, &info) != 0 && info.dli_fname != nullptr) return info.dli_fname;
  return "?";
}

inline bool provider_is(const std::string& provider, const char* soname_stem) {
  const auto slash = provider.rfind('/');
  return provider.compare(slash == std::string::npos ? 0 : slash + 1, std::strlen(soname_stem), soname_stem) == 0;
}

// Aborts unless malloc is glibc's: every number of a run would be wrong.
inline void check_process_malloc(const char* program) {
  const std::string p = malloc_provider();
  if (!provider_is(p, "libc.so")) {
    std::fprintf(stderr, "%s: the process malloc comes from %s, not glibc; unset LD_PRELOAD and do not link an "
                 "overriding allocator\n", program, p.c_str());
    std::abort();
  }
}

// Restarts the process with the static-TLS tunable jemalloc needs when it is
// not set yet. The tunable is read once, at startup, so setenv alone is not
// enough. If exec fails the run goes on and the jemalloc variants report an
// error instead of a number.
inline void reexec_for_static_tls(char** argv) {
  const char* cur = std::getenv("GLIBC_TUNABLES");
  if (cur != nullptr && std::strstr(cur, kStaticTlsTunable) != nullptr) return;
  std::string v = std::string(kStaticTlsTunable) + "=16384";
  if (cur != nullptr && *cur != '\0') v = std::string(cur) + ":" + v;
  ::setenv("GLIBC_TUNABLES", v.c_str(), 1);
  ::execv("/proc/self/exe", argv);
  std::perror("bench: re-exec with GLIBC_TUNABLES failed; jemalloc variants will be skipped");
}

// ---- Loading ---------------------------------------------------------------------

template <class F>
bool load_symbol(void* lib, F& fn, const char* name, std::string& error) {
  fn = reinterpret_cast<F>(::dlsym(lib, name));
  if (fn == nullptr) error += std::string(error.empty() ? "" : "; ") + "no symbol " + name;
  return fn != nullptr;
}

struct MimallocApi {
  void* (*malloc)(std::size_t) = nullptr;
  void* (*malloc_aligned)(std::size_t, std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  std::string path, error;

  static const MimallocApi& get() {
    static const MimallocApi api = [] {
      MimallocApi a;
      void* lib = ::dlopen(kMimallocSoname, RTLD_NOW | RTLD_LOCAL);
      if (lib == nullptr) {
        a.error = ::dlerror();
        return a;
      }
      load_symbol(lib, a.malloc, "mi_malloc", a.error);
      load_symbol(lib, a.malloc_aligned, "mi_malloc_aligned", a.error);
      load_symbol(lib, a.free, "mi_free", a.error);
      Dl_info info{};
      if (a.malloc != nullptr && ::dladdr(reinterpret_cast<void*>(a.malloc), &info) != 0 && info.dli_fname)
        a.path = info.dli_fname;
      return a;
    }();
    return api;
  }
  bool ok() const noexcept { return malloc != nullptr && malloc_aligned != nullptr && free != nullptr; }
};

// jemalloc 5.3's malloc/free have a thread-cache fast path that its
// mallocx/sdallocx lack (a 64-B pair measured 9-10 ns against 20-25 ns here),
// so the plain pair from the library's own handle is what a program linked
// with jemalloc gets, and what is measured; mallocx/sdallocx serve the
// alignments the plain call does not give.
struct JemallocApi {
  void* (*malloc)(std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  void* (*mallocx)(std::size_t, int) = nullptr;
  void (*sdallocx)(void*, std::size_t, int) = nullptr;
  int (*mallctl)(const char*, void*, std::size_t*, void*, std::size_t) = nullptr;
  std::string path, error;

  static const JemallocApi& get() {
    static const JemallocApi api = [] {
      JemallocApi a;
      void* lib = ::dlopen(kJemallocSoname, RTLD_NOW | RTLD_LOCAL);
      if (lib == nullptr) {
        a.error = ::dlerror();
        return a;
      }
      load_symbol(lib, a.malloc, "malloc", a.error);
      load_symbol(lib, a.free, "free", a.error);
      load_symbol(lib, a.mallocx, "mallocx", a.error);
      load_symbol(lib, a.sdallocx, "sdallocx", a.error);
      load_symbol(lib, a.mallctl, "mallctl", a.error);
      Dl_info info{};
      if (a.mallocx != nullptr && ::dladdr(reinterpret_cast<void*>(a.mallocx), &info) != 0 && info.dli_fname)
        a.path = info.dli_fname;
      // dlsym on the library's handle must find jemalloc's malloc, not glibc's.
      Dl_info m{};
      if (a.malloc != nullptr &&
          (::dladdr(reinterpret_cast<void*>(a.malloc), &m) == 0 || m.dli_fname == nullptr || a.path != m.dli_fname)) {
        a.error += std::string(a.error.empty() ? "" : "; ") + "malloc from the jemalloc handle is not jemalloc's";
        a.malloc = nullptr;
      }
      return a;
    }();
    return api;
  }
  bool ok() const noexcept { return malloc != nullptr && free != nullptr && mallocx != nullptr && sdallocx != nullptr; }
};

// jemalloc's MALLOCX_LG_ALIGN(la) is la itself in the low bits.
constexpr int jemalloc_align_flags(std::size_t align) noexcept {
  return static_cast<int>(std::countr_zero(align));
}

// The peers' plain entry points align every block of 16 bytes or more whose
// size is a multiple of 16 to 16 (glibc: every block). Where that holds the
// plain call is what a C++ program would make, so it is what is measured.
constexpr bool plain_call_aligns(std::size_t n, std::size_t align) noexcept {
  return align <= 8 || (align <= 16 && n % 16 == 0);
}

// ---- Adapters --------------------------------------------------------------------

struct Glibc {
  static bool available(std::string*) { return true; }  // check_process_malloc ran at startup
  void* alloc(std::size_t n, std::size_t align) noexcept {
    if (align <= 16) return std::malloc(n);
    void* p = nullptr;
    return ::posix_memalign(&p, align, n) == 0 ? p : nullptr;
  }
  void free(void* p, std::size_t, std::size_t) noexcept { std::free(p); }
};

struct Mimalloc {
  // Copied out of the shared struct so that the loop keeps them in registers.
  void* (*malloc_fn)(std::size_t) = MimallocApi::get().malloc;
  void* (*aligned_fn)(std::size_t, std::size_t) = MimallocApi::get().malloc_aligned;
  void (*free_fn)(void*) = MimallocApi::get().free;

  static bool available(std::string* why) {
    if (MimallocApi::get().ok()) return true;
    if (why != nullptr) *why = "mimalloc not loaded: " + MimallocApi::get().error;
    return false;
  }
  void* alloc(std::size_t n, std::size_t align) noexcept {
    return plain_call_aligns(n, align) ? malloc_fn(n) : aligned_fn(n, align);
  }
  void free(void* p, std::size_t, std::size_t) noexcept { free_fn(p); }
};

struct Jemalloc {
  void* (*malloc_fn)(std::size_t) = JemallocApi::get().malloc;
  void (*free_fn)(void*) = JemallocApi::get().free;
  void* (*mallocx_fn)(std::size_t, int) = JemallocApi::get().mallocx;
  void (*sdallocx_fn)(void*, std::size_t, int) = JemallocApi::get().sdallocx;

  static bool available(std::string* why) {
    if (JemallocApi::get().ok()) return true;
    if (why != nullptr) *why = "jemalloc not loaded: " + JemallocApi::get().error;
    return false;
  }
  void* alloc(std::size_t n, std::size_t align) noexcept {
    return plain_call_aligns(n, align) ? malloc_fn(n) : mallocx_fn(n, jemalloc_align_flags(align));
  }
  void free(void* p, std::size_t n, std::size_t align) noexcept {
    if (plain_call_aligns(n, align)) {
      free_fn(p);
    } else {
      sdallocx_fn(p, n, jemalloc_align_flags(align));
    }
  }
};

#if SYDRA_BENCH_SNMALLOC
// snmalloc's global allocator, inlined. Its plain alloc gives every block of
// 16 bytes or more the natural alignment of its size class, so the same
// plain_call_aligns rule as the other peers picks the call a C++ program
// would make; the sized dealloc is the free a program with sized delete gets.
struct Snmalloc {
  static bool available(std::string*) { return true; }  // compiled in: nothing to load
  void* alloc(std::size_t n, std::size_t align) noexcept {
    return plain_call_aligns(n, align) ? snmalloc::alloc(n) : snmalloc::alloc_aligned(align, n);
  }
  void free(void* p, std::size_t n, std::size_t align) noexcept {
    if (plain_call_aligns(n, align)) {
      snmalloc::dealloc(p, n);
    } else {
      snmalloc::dealloc(p, n, align);
    }
  }
};
#endif

// For the JSON context: where the snmalloc column came from, or why there is none.
inline std::string snmalloc_description() {
#if SYDRA_BENCH_SNMALLOC
  return std::string("inlined (header-only) from ") + SYDRA_BENCH_SNMALLOC_SRC;
#else
  return "not built: configure with -Dsnmalloc_src=DIR (tools/bench.sh: SNMALLOC_SRC=DIR)";
#endif
}

// ---- The ideal -------------------------------------------------------------------

// An intrusive singly-linked free list and nothing else: the floor that any
// allocator's fast path is measured against. The head lives in memory (the
// list object escapes), as every allocator's list head does, so each pair
// really loads and stores it.
struct IdealList {
  struct Node {
    Node* next;
  };
  Node* head = nullptr;
  std::vector<void*> owned;

  IdealList(std::size_t size, std::size_t count) {
    const std::size_t bytes = size < sizeof(Node) ? sizeof(Node) : size;
    for (std::size_t i = 0; i < count; ++i) {
      void* p = nullptr;
      if (::posix_memalign(&p, 16, bytes) != 0) std::abort();
      owned.push_back(p);
      auto* n = static_cast<Node*>(p);
      n->next = head;
      head = n;
    }
    escape(this);
  }
  ~IdealList() {
    for (void* p : owned) std::free(p);
  }
  IdealList(const IdealList&) = delete;
  IdealList& operator=(const IdealList&) = delete;
};

struct IdealInline {
  IdealList& l;
  static bool available(std::string*) { return true; }
  void* alloc(std::size_t, std::size_t) noexcept {
    IdealList::Node* n = l.head;
    l.head = n->next;
    return n;
  }
  void free(void* p, std::size_t, std::size_t) noexcept {
    auto* n = static_cast<IdealList::Node*>(p);
    n->next = l.head;
    l.head = n;
  }
};

// The same list behind real calls: what the ideal costs once it is not inlined.
__attribute__((noinline)) inline void* ideal_pop(IdealList& l) noexcept {
  IdealList::Node* n = l.head;
  l.head = n->next;
  return n;
}
__attribute__((noinline)) inline void ideal_push(IdealList& l, void* p) noexcept {
  auto* n = static_cast<IdealList::Node*>(p);
  n->next = l.head;
  l.head = n;
}
struct IdealCall {
  IdealList& l;
  static bool available(std::string*) { return true; }
  void* alloc(std::size_t, std::size_t) noexcept { return ideal_pop(l); }
  void free(void* p, std::size_t, std::size_t) noexcept { ideal_push(l, p); }
};

}  // namespace sydra_bench
