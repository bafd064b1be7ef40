// Compiler and sanitizer facts every layer needs; nothing here allocates.
#pragma once

// Every sydra-alloc header reaches this one (directly or through another)
// before any code of its own, so an older standard is refused here with one
// clear line rather than pages of concept errors. The .pc file carries no -std
// flag: a consumer's own project chooses the standard.
#if !defined(__cplusplus) || __cplusplus < 202002L
#error "sydra-alloc needs C++20 (-std=c++20 or later)"
#endif

#include <sydra/alloc/config.hpp>

// The ABI namespace. Checked and unchecked builds lay out slab metadata and
// handles differently, so every symbol carries the setting: a program
// compiled with one SYDRA_ALLOC_CHECKED linked against a library built with
// the other fails with undefined references to sydra::alloc::v1... or
// sydra::alloc::v1_checked..., instead of corrupting its heap quietly.
#if SYDRA_ALLOC_CHECKED
#define SYDRA_ALLOC_ABI v1_checked
#else
#define SYDRA_ALLOC_ABI v1
#endif

#include <cstddef>
#include <cstdint>

// A fast path is inlined into its caller; a slow path is kept out of line so
// that the fast path stays a handful of instructions (snmalloc's split).
#define SYDRA_FAST_PATH inline __attribute__((always_inline))
#define SYDRA_SLOW_PATH __attribute__((noinline, cold))
// Out of line but not cold: a common route that is not the fast path (the
// fallback's free). Called last, it is a jump, and the fast path that reaches
// it saves no register.
#define SYDRA_OUT_OF_LINE __attribute__((noinline))
#define SYDRA_LIKELY(x) __builtin_expect(!!(x), 1)
#define SYDRA_UNLIKELY(x) __builtin_expect(!!(x), 0)

#if defined(__SANITIZE_ADDRESS__)
#define SYDRA_ALLOC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SYDRA_ALLOC_ASAN 1
#endif
#endif
#ifndef SYDRA_ALLOC_ASAN
#define SYDRA_ALLOC_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define SYDRA_ALLOC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SYDRA_ALLOC_TSAN 1
#endif
#endif
#ifndef SYDRA_ALLOC_TSAN
#define SYDRA_ALLOC_TSAN 0
#endif

// Free-list links live inside freed (poisoned) blocks; only the link accessors
// may touch them, so only they opt out of ASan instrumentation.
#if SYDRA_ALLOC_ASAN
#define SYDRA_NO_ASAN __attribute__((no_sanitize("address")))
#else
#define SYDRA_NO_ASAN
#endif

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

inline constexpr bool checked = SYDRA_ALLOC_CHECKED != 0;

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
