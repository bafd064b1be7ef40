// The larson-like churn, shared by bench-alloc (throughput) and bench-memory
// (peak RSS) so that both measure the same workload.
//
// A shared array of atomic slots, each holding one live block. One operation:
// pick a random slot, allocate a block of a random size in the range, write
// into it, exchange it into the slot, and free the block that was there.
// Slots are shared by all threads, so with T threads (T-1)/T of the frees
// are remote (the block was allocated by another thread), and lifetimes are
// random (a block lives until its slot is drawn again). Every block carries
// its own size in its first four bytes: a sized free needs it, and the
// exchange moves pointer and size together.
//
// Sizes are uniform over the range's bytes, or log-uniform (SizeRange::
// log_uniform): then they come from a table of kLogSizes quantiles, drawn
// with one rng.below() as the uniform case is, because std::exp per
// operation would cost more than some allocators' whole alloc+free.
#pragma once

#include "bench_common.hpp"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace sydra_bench {

template <class A, std::size_t Align>
class Churn {
 public:
  Churn(A& a, std::size_t slots, SizeRange range)
      : a_(a), slots_(new std::atomic<void*>[slots]()), count_(slots), range_(range) {
    if (range_.log_uniform) {
      log_sizes_.reset(new std::uint32_t[kLogSizes]);
      for (std::size_t i = 0; i < kLogSizes; ++i)
        log_sizes_[i] = static_cast<std::uint32_t>(
            log_uniform_quantile(range_.lo, range_.hi, (static_cast<double>(i) + 0.5) / kLogSizes));
    }
  }
  Churn(const Churn&) = delete;
  Churn& operator=(const Churn&) = delete;
  ~Churn() { drain(); }

  // Every slot gets a block: the live set is at its steady size from the
  // first timed operation on.
  void fill(Xorshift64& rng) {
    for (std::size_t i = 0; i < count_; ++i) release(slots_[i].exchange(make(rng), std::memory_order_acq_rel));
  }

  void run(Xorshift64& rng, std::size_t ops) noexcept {
    for (std::size_t k = 0; k < ops; ++k) {
      const std::size_t i = rng.below(count_);
      void* p = make(rng);
      release(slots_[i].exchange(p, std::memory_order_acq_rel));
    }
  }

  // Frees every block still in a slot; call it when no thread runs.
  void drain() noexcept {
    for (std::size_t i = 0; i < count_; ++i) release(slots_[i].exchange(nullptr, std::memory_order_acq_rel));
  }

  std::size_t slots() const noexcept { return count_; }

 private:
  // 4096 quantiles: steps of at most 0.2% of the size (ln(2048) / 4096 over
  // 16 B..32 KiB), in a 16 KiB table that stays in cache.
  static constexpr std::size_t kLogSizes = 4096;

  void* make(Xorshift64& rng) noexcept {
    const auto n = log_sizes_ ? log_sizes_[rng.below(kLogSizes)]
                              : static_cast<std::uint32_t>(range_.lo + rng.below(range_.hi - range_.lo + 1));
    void* p = a_.alloc(n, Align);
    if (p == nullptr) {
      std::fprintf(stderr, "churn: allocation of %u bytes failed\n", static_cast<unsigned>(n));
      std::abort();
    }
    std::memcpy(p, &n, sizeof n);
    return p;
  }
  void release(void* p) noexcept {
    if (p == nullptr) return;
    std::uint32_t n;
    std::memcpy(&n, p, sizeof n);
    a_.free(p, n, Align);
  }

  A& a_;
  std::unique_ptr<std::atomic<void*>[]> slots_;
  std::size_t count_;
  SizeRange range_;
  std::unique_ptr<std::uint32_t[]> log_sizes_;  // only for a log-uniform range
};

}  // namespace sydra_bench
