// Live-block assertions for tests shared by every mode. Unchecked mimalloc
// mode keeps no live counts (its handle has no leaks()); there the counts
// cannot be asserted, and handle_test.cpp proves the member is absent.
#pragma once

#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

namespace sydra::alloc::test {
template <class H>
LeakReport live(H& h) {
  if constexpr (H::counts_live) {
    return h.leaks();
  } else {
    return {};
  }
}
}  // namespace sydra::alloc::test

#define EXPECT_LIVE(handle, ...)                                                                    \
  do {                                                                                              \
    if (std::remove_reference_t<decltype(handle)>::counts_live) {                                   \
      EXPECT_EQ(::sydra::alloc::test::live(handle), (::sydra::alloc::LeakReport{__VA_ARGS__}));     \
    }                                                                                               \
  } while (0)

#define EXPECT_LIVE_BLOCKS(handle, n)                                                               \
  do {                                                                                              \
    if (std::remove_reference_t<decltype(handle)>::counts_live) {                                   \
      EXPECT_EQ(::sydra::alloc::test::live(handle).blocks, (n));                                    \
    }                                                                                               \
  } while (0)
