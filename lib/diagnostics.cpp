// Misuse reports. Kept out of line: they are cold, and they must not allocate
// (the heap may be the thing that is broken).
#include <sydra/alloc/diagnostics.hpp>

#include <cstdio>
#include <cstdlib>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

const char* to_string(Misuse kind) noexcept {
  switch (kind) {
    case Misuse::double_free: return "double free";
    case Misuse::foreign_pointer: return "foreign pointer";
    case Misuse::interior_pointer: return "interior pointer";
    case Misuse::size_mismatch: return "size mismatch";
    case Misuse::alignment_mismatch: return "alignment mismatch";
    case Misuse::bad_request: return "bad request";
    case Misuse::corrupted_free_list: return "corrupted free list";
  }
  return "misuse";
}

void report_misuse(Misuse kind, const char* detail, const void* ptr, std::size_t len, std::size_t align) noexcept {
  std::fprintf(stderr, "sydra-alloc: %s: %s (ptr=%p, len=%zu, align=%zu)\n", to_string(kind), detail, ptr, len, align);
  std::fflush(stderr);
  std::abort();
}

void warn_request(const char* detail, std::size_t len, std::size_t align) noexcept {
  std::fprintf(stderr, "sydra-alloc: bad request: %s (len=%zu, align=%zu); returning nullptr\n", detail, len, align);
}

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
