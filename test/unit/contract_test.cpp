// The Allocator contract (allocator.hpp), through the configured handle of
// whichever mode this executable was built for and, in small_pool mode, a
// policy with its own size classes that pools up to 4 KiB.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include "../support/live.hpp"
#include "../support/wide_policy.hpp"

#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

namespace sa = sydra::alloc;

namespace {

bool aligned(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

template <class Handle>
class Contract : public ::testing::Test {
 protected:
  Handle handle;
  sa::Allocator a = handle.allocator();
};
#if SYDRA_ALLOC_MODE == 2
using Handles = ::testing::Types<sa::AllocatorHandle, sydra_test::WideHandle>;
#else
using Handles = ::testing::Types<sa::AllocatorHandle>;
#endif
TYPED_TEST_SUITE(Contract, Handles);

TYPED_TEST(Contract, LengthZeroGivesNullptr) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  EXPECT_EQ(a.alloc(0, 1), nullptr);
  EXPECT_EQ(a.alloc(0, 64), nullptr);
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, AlignmentZeroCountsAsOne) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  void* p = a.alloc(24, 0);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0xAB, 24);
  EXPECT_TRUE(a.resize(p, 24, 0, 24));
  a.free(p, 24, 0);
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, EveryPowerOfTwoAlignmentFrom1To4096) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  for (std::size_t align = 1; align <= 4096; align *= 2) {
    for (std::size_t len : {std::size_t{1}, std::size_t{8}, std::size_t{24}, std::size_t{256}, std::size_t{257},
                            std::size_t{5000}}) {
      void* p = a.alloc(len, align);
      ASSERT_NE(p, nullptr) << "len " << len << " align " << align;
      EXPECT_TRUE(aligned(p, align)) << "len " << len << " align " << align;
      std::memset(p, 0x5A, len);
      a.free(p, len, align);
    }
  }
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, NonPowerOfTwoAlignmentGivesNullptr) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  for (std::size_t align : {3u, 5u, 6u, 7u, 12u, 24u, 100u, 4095u}) {
    testing::internal::CaptureStderr();
    EXPECT_EQ(a.alloc(16, align), nullptr) << align;
    const std::string err = testing::internal::GetCapturedStderr();
    if constexpr (sa::checked) {
      EXPECT_NE(err.find("not a power of two"), std::string::npos) << err;
    }
  }
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, HugeSizesGiveNullptrWithoutAborting) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  constexpr std::size_t size_max = std::numeric_limits<std::size_t>::max();
  constexpr std::size_t ptrdiff_max_plus_1 = static_cast<std::size_t>(PTRDIFF_MAX) + 1;
  for (std::size_t align : {1u, 8u, 64u, 4096u}) {
    EXPECT_EQ(a.alloc(size_max, align), nullptr);
    EXPECT_EQ(a.alloc(ptrdiff_max_plus_1, align), nullptr);
    EXPECT_EQ(a.alloc(size_max - 4096, align), nullptr);
  }
  void* p = a.alloc(32, 8);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(a.resize(p, 32, 8, size_max));
  EXPECT_EQ(a.remap(p, 32, 8, ptrdiff_max_plus_1), nullptr);
  a.free(p, 32, 8);
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, FreeOfLengthZeroIsANoOp) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  void* p = a.alloc(40, 8);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, 40);
  a.free(p, 0, 8);  // must not release or disturb the block
  EXPECT_LIVE_BLOCKS(handle, 1u);
  EXPECT_EQ(static_cast<unsigned char*>(p)[39], 1);
  a.free(nullptr, 40, 8);
  a.free(p, 40, 8);
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, ResizeIsTrueOnlyInPlace) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  void* p = a.alloc(100, 8);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(a.resize(p, 100, 8, 100));
  EXPECT_FALSE(a.resize(p, 100, 8, 1 << 20));  // no heap holds 1 MiB behind a 100-byte block
  a.free(p, 100, 8);
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, RemapMovesAndKeepsContents) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  auto* p = static_cast<unsigned char*>(a.alloc(40, 8));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 40; ++i) p[i] = static_cast<unsigned char>(i);
  auto* q = static_cast<unsigned char*>(a.remap(p, 40, 8, 4000));
  ASSERT_NE(q, nullptr);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(q[i], i);
  auto* r = static_cast<unsigned char*>(a.remap(q, 4000, 8, 20));
  ASSERT_NE(r, nullptr);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(r[i], i);
  a.free(r, 20, 8);
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, RemapNullptrLeavesOldBlockValid) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  auto* p = static_cast<unsigned char*>(a.alloc(64, 8));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x77, 64);
  EXPECT_EQ(a.remap(p, 64, 8, std::numeric_limits<std::size_t>::max()), nullptr);
  EXPECT_EQ(a.remap(p, 64, 8, static_cast<std::size_t>(PTRDIFF_MAX) + 1), nullptr);
  EXPECT_EQ(a.remap(p, 64, 8, 0), nullptr);
  for (int i = 0; i < 64; ++i) ASSERT_EQ(p[i], 0x77);
  EXPECT_LIVE_BLOCKS(handle, 1u);
  a.free(p, 64, 8);
  EXPECT_LIVE(handle);
}

struct Tracked3 {
  static inline int live = 0;
  std::uint64_t a, b, c;
  Tracked3(std::uint64_t x) : a(x), b(x + 1), c(x + 2) { ++live; }
  ~Tracked3() { --live; }
};
struct Throws {
  Throws() { throw std::runtime_error("ctor"); }
};

TYPED_TEST(Contract, CreateDestroyAndArrays) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  Tracked3* t = a.create<Tracked3>(7u);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->c, 9u);
  EXPECT_EQ(Tracked3::live, 1);
  a.destroy(t);
  EXPECT_EQ(Tracked3::live, 0);
  EXPECT_THROW(a.create<Throws>(), std::runtime_error);
  EXPECT_LIVE(handle);  // the throwing constructor's memory came back

  auto* arr = a.alloc_array<std::uint32_t>(1000);
  ASSERT_NE(arr, nullptr);
  for (std::uint32_t i = 0; i < 1000; ++i) arr[i] = i;
  EXPECT_EQ(arr[999], 999u);
  a.free_array(arr, 1000);
  EXPECT_EQ(a.alloc_array<std::uint64_t>(std::numeric_limits<std::size_t>::max() / 4), nullptr);
  EXPECT_EQ(a.alloc_array<std::uint64_t>(0), nullptr);
  EXPECT_LIVE(handle);
}

TYPED_TEST(Contract, ManySizesKeepTheirContents) {
  [[maybe_unused]] auto& handle = this->handle;
  [[maybe_unused]] sa::Allocator a = this->a;
  std::vector<std::pair<unsigned char*, std::size_t>> blocks;
  for (std::size_t len = 1; len <= 2048; len += 7) {
    auto* p = static_cast<unsigned char*>(a.alloc(len, 8));
    ASSERT_NE(p, nullptr);
    std::memset(p, static_cast<int>(len & 0xFF), len);
    blocks.emplace_back(p, len);
  }
  for (auto [p, len] : blocks) {
    for (std::size_t i = 0; i < len; ++i) ASSERT_EQ(p[i], static_cast<unsigned char>(len & 0xFF));
    a.free(p, len, 8);
  }
  EXPECT_LIVE(handle);
}

}  // namespace
