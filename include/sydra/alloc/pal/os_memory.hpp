// The operating system's memory, as the slab layer needs it: large aligned
// reservations, pages given back without giving up the address range, and
// zeroed metadata that never comes from a heap a pool may be serving.
//
// Linux commits lazily: a reserved range costs nothing until a page is
// touched, and MADV_DONTNEED returns a page's memory while keeping the range,
// so "commit" is simply the first touch after a reservation or a decommit.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace pal {

inline constexpr std::size_t page_bytes = 4096;
inline constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;  // x86-64's and AArch64's (4 KiB granule) PMD size

// Precondition: bytes and align are multiples of page_bytes, align a power of
// two. Postcondition: a readable, writable, zero-filled range aligned to
// align, or nullptr when the address space (or an RLIMIT_AS) is exhausted.
void* reserve(std::size_t bytes, std::size_t align) noexcept;

// Asks for transparent huge pages behind a range from reserve()
// (madvise(MADV_HUGEPAGE)); only the parts of it that are 2 MiB-aligned and
// 2 MiB long can get them. False if the kernel refused (no THP support): the
// range is then simply backed by small pages.
bool advise_huge_pages(void* p, std::size_t bytes) noexcept;

// Gives back a range from reserve() (or part of one), address space and all.
void release(void* p, std::size_t bytes) noexcept;

// Gives back the memory behind a page-aligned range and keeps the range: the
// next touch reads zeros. Returns false if the kernel refused (the memory is
// then still committed, which is safe, merely not returned).
bool decommit(void* p, std::size_t bytes) noexcept;

// A random 64-bit value, the same for the whole process (hardened policies
// key their free-list encoding and freed-block canaries with it). Never 0.
std::uint64_t process_secret() noexcept;

// Bytes of this process's resident memory (VmRSS), or 0 if /proc is missing.
// For tests and stats only: it reads a file.
std::size_t resident_bytes() noexcept;

}  // namespace pal
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
