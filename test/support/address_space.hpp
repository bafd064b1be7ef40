// For tests that run under an RLIMIT_AS: how much address space the process
// holds now, and whether Valgrind (whose own mappings count against the
// limit) is in the way.
#pragma once

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

#include <cstddef>
#include <cstdio>
#include <cstring>

namespace sydra::alloc::test {

inline bool under_valgrind() {
#if __has_include(<valgrind/valgrind.h>)
  return RUNNING_ON_VALGRIND != 0;
#else
  return false;
#endif
}

// VmSize, or 0 if /proc is missing.
inline std::size_t address_space_bytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  std::size_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::strncmp(line, "VmSize:", 7) == 0 && std::sscanf(line + 7, "%zu", &kib) == 1) break;
  std::fclose(f);
  return kib * 1024;
}

}  // namespace sydra::alloc::test
