// A backing heap that fails on demand: the k-th call (counting every alloc
// and remap from 1), or every call while `exhausted` is set. Used for the
// out-of-memory tests of every layer above it.
#pragma once

#include <sydra/alloc/policy/system_heap.hpp>

#include <atomic>
#include <cstdint>

namespace sydra::alloc::test {

struct FailPlan {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> fail_at{0};  // 0: never
  std::atomic<bool> exhausted{false};
  std::atomic<std::int64_t> live{0};  // blocks the heap has handed out and not got back

  bool should_fail() noexcept {
    const std::uint64_t n = calls.fetch_add(1) + 1;
    return exhausted.load() || n == fail_at.load();
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
    if (plan_ != nullptr && plan_->should_fail()) return nullptr;
    void* p = heap_.alloc(len, align);
    if (p != nullptr && plan_ != nullptr) plan_->live.fetch_add(1);
    return p;
  }
  bool resize(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    return heap_.resize(mem, len, align, new_len);
  }
  void* remap(void* mem, std::size_t len, std::size_t align, std::size_t new_len) noexcept {
    if (plan_ != nullptr && plan_->should_fail()) return nullptr;
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

// small_pool over a failing heap: every slab, shard array, epoch slot and
// fallback block comes from FailingHeap.
struct FailingSmallPool {
  static constexpr const char* name = "failing_small_pool";
  using Shards = ThreadShards;
  using Buckets = MutexBuckets<>;
  using Fallback = Tracked<Audited<FailingHeap>>;
};

}  // namespace sydra::alloc::test
