// The request rules of the Allocator contract (allocator.hpp), shared by every
// heap so that each refuses bad input the same way.
#pragma once

#include <sydra/alloc/diagnostics.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

// Largest length any heap is asked for. Above PTRDIFF_MAX pointer arithmetic
// on the block would overflow, so such requests are refused up front.
inline constexpr std::size_t max_request = static_cast<std::size_t>(PTRDIFF_MAX);

// Alignment 0 means "no requirement", as in the seed's Zig allocator.
SYDRA_FAST_PATH constexpr std::size_t normalize_align(std::size_t align) noexcept { return align == 0 ? 1 : align; }

// True when (len, align) may be served: len in 1..PTRDIFF_MAX and align a
// power of two whose padding cannot overflow the length.
SYDRA_FAST_PATH constexpr bool valid_request(std::size_t len, std::size_t align) noexcept {
  // (align & (align - 1)) rather than std::has_single_bit: without -mpopcnt
  // the latter is a library call on every fallback request.
  return len != 0 && align != 0 && (align & (align - 1)) == 0 && len <= max_request - (align - 1);
}

// The slow answer for an invalid request: nullptr, with a diagnostic for the
// one case that is a caller bug rather than a size the caller computed.
inline void* refuse_request(std::size_t len, std::size_t align) noexcept {
  if constexpr (checked) {
    if (align == 0 || (align & (align - 1)) != 0) warn_request("alignment is not a power of two", len, align);
  }
  return nullptr;
}

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
