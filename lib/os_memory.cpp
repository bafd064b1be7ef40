// pal/os_memory.hpp on Linux: mmap, munmap and madvise.
#include <sydra/alloc/pal/os_memory.hpp>

#include <sys/mman.h>
#include <sys/random.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace pal {

void* reserve(std::size_t bytes, std::size_t align) noexcept {
  if (align < page_bytes) align = page_bytes;
  // Over-reserve by the alignment and trim both ends: mmap only promises
  // page alignment. MAP_NORESERVE: the range is address space, not a promise
  // of memory, so a large chunk does not count against overcommit.
  const std::size_t span = bytes + align - page_bytes;
  if (span < bytes) return nullptr;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t end = start + span, used_end = aligned + bytes;
  if (end > used_end) ::munmap(reinterpret_cast<void*>(used_end), end - used_end);
  return reinterpret_cast<void*>(aligned);
}

void release(void* p, std::size_t bytes) noexcept {
  if (p != nullptr && bytes != 0) ::munmap(p, bytes);
}

bool decommit(void* p, std::size_t bytes) noexcept { return ::madvise(p, bytes, MADV_DONTNEED) == 0; }

bool advise_huge_pages(void* p, std::size_t bytes) noexcept { return ::madvise(p, bytes, MADV_HUGEPAGE) == 0; }

std::uint64_t process_secret() noexcept {
  static const std::uint64_t secret = [] {
    std::uint64_t v = 0;
    if (::getrandom(&v, sizeof v, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof v)) {
      // No entropy source: mix what differs between runs (ASLR'd addresses, time).
      v = reinterpret_cast<std::uintptr_t>(&v) * 0x9E3779B97F4A7C15ull ^ __builtin_ia32_rdtsc();
    }
    return v | 1;  // never 0: a canary of 0 would match zeroed memory
  }();
  return secret;
}

std::size_t resident_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  std::size_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      std::sscanf(line + 6, "%zu", &kib);
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

}  // namespace pal
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
