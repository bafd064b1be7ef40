// A backing heap, and a slab region source, that fail on demand: the k-th
// call (counting every alloc, remap and region reservation from 1), or every
// call while `exhausted` is set. Used for the out-of-memory tests of every
// layer above them.
#pragma once

#include <sydra/alloc/modes.hpp>
#include <sydra/alloc/heap/system_heap.hpp>
#include <sydra/alloc/slab/regions.hpp>

#include <atomic>
#include <cstdint>

namespace sydra::alloc::test {

struct FailPlan {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> fail_at{0};  // 0: never
  std::atomic<bool> exhausted{false};
  std::atomic<std::int64_t> live{0};  // blocks and regions handed out and not given back
  std::atomic<std::size_t> failed_len{0}, failed_align{0};  // the last call made to fail

  bool should_fail(std::size_t len, std::size_t align) noexcept {
    const std::uint64_t n = calls.fetch_add(1) + 1;
    if (!exhausted.load() && n != fail_at.load()) return false;
    failed_len = len;
    failed_align = align;
    return true;
  }
};

class FailingHeap {
 public:
  struct Options {
    FailPlan* plan = nullptr;
  };
  FailingHeap() = default;
  explicit FailingHeap(const Options& o) noexcept : plan_(o.plan) {}

  void* alloc(std::size_t len, std::size_t align) noexcept {
    if (plan_ != nullptr && plan_->should_fail(len, align)) return nullptr;
    void* p = heap_.alloc(len, align);
    if (p != nullptr && plan_ != nullptr) plan_->live.fetch_add(1);
    return p;
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    return heap_.resize(mem, len, align, new_len);
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    if (plan_ != nullptr && plan_->should_fail(new_len, align)) return nullptr;
    return heap_.remap(mem, len, align, new_len);
  }
  void free(void* mem, std::size_t len, std::size_t align) noexcept {
    if (plan_ != nullptr) plan_->live.fetch_sub(1);
    heap_.free(mem, len, align);
  }
  Allocator backing_allocator() noexcept { return Allocator::of(*this); }

 private:
  SystemHeap heap_;
  FailPlan* plan_ = nullptr;
};

// Slab regions from the OS, failing when the plan says so. `live` counts
// regions held.
class FailingRegions {
 public:
  struct Options {
    FailPlan* plan = nullptr;
  };
  FailingRegions() = default;
  explicit FailingRegions(const Options& o) noexcept : plan_(o.plan) {}
  void* reserve(std::size_t n) noexcept {
    if (plan_ != nullptr && plan_->should_fail(n, slab_bytes)) return nullptr;
    void* p = os_.reserve(n);
    if (p != nullptr && plan_ != nullptr) plan_->live.fetch_add(1);
    return p;
  }
  void release(void* p, std::size_t n) noexcept {
    if (plan_ != nullptr) plan_->live.fetch_sub(1);
    os_.release(p, n);
  }
  bool decommit(void* p, std::size_t n) noexcept { return os_.decommit(p, n); }

 private:
  OsRegions os_;
  FailPlan* plan_ = nullptr;
};

// small_pool over failing memory: every slab region comes from
// FailingRegions; every shard array, epoch slot, retire bag, counter block and
// fallback block from FailingHeap.
struct FailingSmallPool {
  static constexpr const char* name = "failing_small_pool";
  using Shards = SmallPoolPolicy::Shards;
  using Buckets = SmallPoolPolicy::Buckets;
  using Fallback = Tracked<Audited<FailingHeap>>;
  using Regions = FailingRegions;
};

}  // namespace sydra::alloc::test
