// How sydra-alloc reports misuse. Frees of memory it does not own are fatal in
// checked builds: continuing would corrupt a free list. Bad requests (size,
// alignment) are not fatal: they return nullptr and, when checked, say why.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <cstddef>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

enum class Misuse {
  double_free,
  foreign_pointer,
  interior_pointer,
  size_mismatch,
  alignment_mismatch,
  bad_request,
  corrupted_free_list,  // hardened policies: a link inside a freed block was overwritten
};

const char* to_string(Misuse kind) noexcept;


// Prints "sydra-alloc: <kind>: <detail> (ptr=..., len=..., align=...)" on
// stderr and aborts. Never returns.
[[noreturn]] SYDRA_SLOW_PATH void report_misuse(Misuse kind, const char* detail, const void* ptr,
                                                std::size_t len, std::size_t align) noexcept;

// Prints the same line without aborting: used for requests that are refused
// with nullptr (zero or huge sizes are not misuse; a bad alignment is).
SYDRA_SLOW_PATH void warn_request(const char* detail, std::size_t len, std::size_t align) noexcept;

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
