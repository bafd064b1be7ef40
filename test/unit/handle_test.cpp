// BasicAllocatorHandle: composition, the optional mixins, the configured mode,
// and the leak report.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include "../support/live.hpp"

#include <string>
#include <type_traits>

namespace sa = sydra::alloc;

namespace {

// ---- Composition at compile time ---------------------------------------------

struct BareFallbackPolicy {
  static constexpr const char* name = "bare";
  using Shards = sa::NoShards;
  using Buckets = sa::NoBuckets;
  using Fallback = sa::SystemHeap;
};
struct BareWithPointer {  // what a handle must hold at least: its heap and the leak sink
  [[no_unique_address]] sa::SystemHeap heap;
  sa::LeakReport* sink;
  bool print;
};

static_assert(std::is_empty_v<sa::NoShards> && std::is_empty_v<sa::NoBuckets>);
static_assert(sizeof(sa::BasicAllocatorHandle<BareFallbackPolicy>) == sizeof(BareWithPointer),
              "NoShards and NoBuckets must add nothing to a handle");
static_assert(sizeof(sa::BasicAllocatorHandle<sa::DefaultPolicy>) ==
                  sizeof(sa::GeneralPurposeHeap) + sizeof(BareWithPointer),
              "the default mode is its heap plus the leak sink");

// snapshot_stats() is always declared (a policy without stats gets a
// static_assert that says how to opt in); has_stats says whether it compiles.
template <class H>
concept HasStats = H::has_stats;
template <class H>
concept HasEpochs = requires(H& h) {
  h.enter_epoch();
  h.leave_epoch(1);
  h.advance_epoch();
  h.retire(nullptr, 0, 0);
  h.collect_garbage();
};

static_assert(!HasStats<sa::BasicAllocatorHandle<sa::DefaultPolicy>>);
static_assert(!HasEpochs<sa::BasicAllocatorHandle<sa::DefaultPolicy>>);
static_assert(!HasStats<sa::BasicAllocatorHandle<sa::MimallocPolicy>>);
static_assert(!HasEpochs<sa::BasicAllocatorHandle<sa::MimallocPolicy>>);
static_assert(HasStats<sa::BasicAllocatorHandle<sa::SmallPoolPolicy>>);
static_assert(HasEpochs<sa::BasicAllocatorHandle<sa::SmallPoolPolicy>>);

// Stats without epochs: buckets and a tracked fallback, no shards.
struct BucketsOnly {
  static constexpr const char* name = "buckets-only";
  using Shards = sa::NoShards;
  using Buckets = sa::MutexBuckets<>;
  using Fallback = sa::Tracked<sa::GeneralPurposeHeap>;
};
static_assert(HasStats<sa::BasicAllocatorHandle<BucketsOnly>>);
static_assert(!HasEpochs<sa::BasicAllocatorHandle<BucketsOnly>>);

// ---- The configured mode ---------------------------------------------------------

TEST(ConfiguredMode, ConstantsFollowTheBuildOption) {
#if SYDRA_ALLOC_MODE == 0
  EXPECT_EQ(sa::mode, "default");
  EXPECT_FALSE(sa::is_mimalloc);
  EXPECT_FALSE(sa::is_small_pool);
  static_assert(std::is_base_of_v<sa::DefaultPolicy, sa::AllocatorHandle::PolicyType>);
#elif SYDRA_ALLOC_MODE == 1
  EXPECT_EQ(sa::mode, "mimalloc");
  EXPECT_TRUE(sa::is_mimalloc);
  EXPECT_FALSE(sa::is_small_pool);
  static_assert(std::is_base_of_v<sa::MimallocPolicy, sa::AllocatorHandle::PolicyType>);
#else
  EXPECT_EQ(sa::mode, "small_pool");
  EXPECT_FALSE(sa::is_mimalloc);
  EXPECT_TRUE(sa::is_small_pool);
  // The build's options shape the configured small_pool policy only.
  static_assert(std::is_base_of_v<sa::SmallPoolPolicyWith<SYDRA_ALLOC_SHARDS, SYDRA_ALLOC_STATS != 0,
                                                          SYDRA_ALLOC_LOCK_TIMING != 0>,
                                  sa::AllocatorHandle::PolicyType>);
  static_assert(sa::AllocatorHandle::PolicyType::Shards::features.count == SYDRA_ALLOC_SHARDS);
#endif
  EXPECT_EQ(std::string(sa::AllocatorHandle::PolicyType::name), std::string(sa::mode));
}

TEST(ConfiguredMode, HandleTypeCarriesTheModeInItsName) {
  // The mode's inline namespace is part of the type, hence of every mangled
  // symbol that mentions the handle.
  const std::string name = typeid(sa::AllocatorHandle).name();
  EXPECT_NE(name.find("mode_" + std::string(sa::mode)), std::string::npos) << name;
}

// ---- Type erasure -----------------------------------------------------------------

TEST(Allocator, IsTwoPointersAndReachesTheHandle) {
  static_assert(sizeof(sa::Allocator) == 2 * sizeof(void*));
  sa::AllocatorHandle h;
  sa::Allocator a = h.allocator();
  sa::Allocator b = a;
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.context(), &h);
  void* p = b.alloc(48, 8);
  ASSERT_NE(p, nullptr);
  EXPECT_LIVE_BLOCKS(h, 1u);
  a.free(p, 48, 8);
  EXPECT_LIVE_BLOCKS(h, 0u);
}

// ---- Leak report ----------------------------------------------------------------

// Unchecked mimalloc mode is the one handle that counts nothing: no leaks()
// member, and a destroyed handle writes an empty report.
static_assert(sa::BasicAllocatorHandle<sa::DefaultPolicy>::counts_live);
static_assert(sa::BasicAllocatorHandle<sa::SmallPoolPolicy>::counts_live);
static_assert(sa::BasicAllocatorHandle<sa::MimallocPolicy>::counts_live == sa::checked);
template <class H>
concept HasLeaks = requires(H& h) { h.leaks(); };
static_assert(HasLeaks<sa::AllocatorHandle> == sa::AllocatorHandle::counts_live);

TEST(LeakReport, DestroyingAHandleWithLiveBlocksReportsCountAndBytes) {
  if constexpr (!sa::AllocatorHandle::counts_live) {
    sa::LeakReport report{99, 99};
    void* p = nullptr;
    {
      sa::AllocatorHandle h(sa::AllocatorHandle::Options{.leak_report = &report});
      p = h.alloc(1000, 8);
      h.free(p, 1000, 8);
    }
    EXPECT_EQ(report, sa::LeakReport{});
    return;
  }
  sa::LeakReport report{99, 99};
  testing::internal::CaptureStderr();
  void* leaked[3];
  {
    sa::AllocatorHandle h(sa::AllocatorHandle::Options{.leak_report = &report});
    // Above every mode's largest class: the fallback's blocks, freed below.
    leaked[0] = h.alloc(100000, 8);
    leaked[1] = h.alloc(70000, 64);
    leaked[2] = h.alloc(80000, 16);
    void* freed = h.alloc(77, 8);
    h.free(freed, 77, 8);
    EXPECT_LIVE(h, 3, 250000);
    // The pooled modes keep their slabs, so the leaked fallback blocks stay
    // valid memory only in the fallback heap; they are reported, not freed.
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(report.blocks, 3u);
  EXPECT_EQ(report.bytes, 100000u + 70000u + 80000u);
  EXPECT_NE(err.find("leak: 3 blocks, 250000 bytes"), std::string::npos) << err;
  // The leaked blocks still belong to the C heap (or mimalloc); release them so
  // that LeakSanitizer and Valgrind see a clean test.
  for (void* p : leaked) {
    if constexpr (sa::is_mimalloc) {
      sa::detail::mi_release(p);
    } else {
      std::free(p);
    }
  }
}

TEST(LeakReport, CleanHandleReportsNothing) {
  sa::LeakReport report{5, 5};
  testing::internal::CaptureStderr();
  {
    sa::AllocatorHandle h(sa::AllocatorHandle::Options{.leak_report = &report});
    void* p = h.alloc(4000, 8);
    h.free(p, 4000, 8);
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(report, sa::LeakReport{});
}

TEST(LeakReport, CountsFollowResizeAndRemap) {
  sa::AllocatorHandle h;
  // Above every mode's largest class: the fallback counts the bytes asked for.
  void* p = h.alloc(100000, 8);
  ASSERT_NE(p, nullptr);
  EXPECT_LIVE(h, 1, 100000);
  if (h.resize(p, 100000, 8, 90000)) {
    EXPECT_LIVE(h, 1, 90000);
    p = h.remap(p, 90000, 8, 200000);
  } else {
    p = h.remap(p, 100000, 8, 200000);
  }
  ASSERT_NE(p, nullptr);
  EXPECT_LIVE(h, 1, 200000);
  h.free(p, 200000, 8);
  EXPECT_LIVE(h);
}

}  // namespace
