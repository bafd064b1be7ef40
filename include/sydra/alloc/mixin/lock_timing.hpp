// Bucket locks. The bucket path pays one lock round trip per block, so the
// default mutex is SpinMutex (one locked instruction per round trip);
// FutexMutex (free / locked / locked-with-waiters, sleeping in the kernel)
// suits long critical sections and oversubscribed machines.
//
// PlainLock is the mutex alone: no counters, nothing to read.
// TimedLock adds the seed's lock statistics without putting a clock on the
// uncontended path: the wait is timed only after try_lock fails, and the hold
// is timed on one acquisition in `hold_sample_period` (1 in 64 by default),
// its total estimated from the samples.
#pragma once

#include <sydra/alloc/mixin/stats.hpp>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <thread>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

class FutexMutex {
 public:
  bool try_lock() noexcept {
    int expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed);
  }
  void lock() noexcept {
    if (SYDRA_LIKELY(try_lock())) return;
    lock_slow();
  }
  void unlock() noexcept {
    if (SYDRA_UNLIKELY(state_.exchange(0, std::memory_order_release) == 2)) state_.notify_one();
  }

 private:
  SYDRA_SLOW_PATH void lock_slow() noexcept {
    // A short spin first: bucket critical sections are a few instructions.
    for (int i = 0; i < 64; ++i) {
      if (state_.load(std::memory_order_relaxed) == 0 && try_lock()) return;
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    while (state_.exchange(2, std::memory_order_acquire) != 0) state_.wait(2, std::memory_order_relaxed);
  }
  std::atomic<int> state_{0};
};

// A test-and-test-and-set lock whose release is a plain store: one locked
// instruction per round trip instead of the futex lock's two, which halves
// the bucket path's fixed cost on machines where locked instructions are dear.
// Waiters spin briefly, then yield: critical sections here are a few loads
// and stores, so a waiter only sleeps when the holder was preempted.
class SpinMutex {
 public:
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void lock() noexcept {
    if (SYDRA_LIKELY(try_lock())) return;
    lock_slow();
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  SYDRA_SLOW_PATH void lock_slow() noexcept {
    for (unsigned spins = 0;; ++spins) {
      if (!locked_.load(std::memory_order_relaxed) && try_lock()) return;
      if (spins < 64) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }
  std::atomic<bool> locked_{false};
};

struct SteadyClock {
  static std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }
};

struct TimedLockConfig {
  std::uint64_t threshold_ns = 1000;     // seed: lock_wait_threshold_ns
  std::uint32_t hold_sample_period = 64;  // 1 = time every hold; rounded up to a power of two
};

template <class Mutex = SpinMutex>
class PlainLock {
 public:
  static constexpr bool timed = false;
  PlainLock() = default;
  void configure(const TimedLockConfig&) noexcept {}
  void lock() noexcept { m_.lock(); }
  void unlock() noexcept { m_.unlock(); }
  // Snapshots lock without touching any counter.
  void lock_quietly() noexcept { m_.lock(); }
  void unlock_quietly() noexcept { m_.unlock(); }

 private:
  Mutex m_;
};

template <class Mutex = SpinMutex, class Clock = SteadyClock>
class TimedLock {
 public:
  static constexpr bool timed = true;
  TimedLock() = default;
  // Before first use only.
  // The sample period is rounded up to a power of two, so that "is this
  // acquisition sampled" is a mask test on the acquisition count itself.
  void configure(const TimedLockConfig& c) noexcept {
    threshold_ns_ = c.threshold_ns;
    const std::uint32_t period = c.hold_sample_period == 0 ? 1u : c.hold_sample_period;
    period_ = period > (1u << 30) ? (1u << 30) : std::bit_ceil(period);  // bit_ceil past 2^31 is UB
  }

  void lock() noexcept {
    if (SYDRA_UNLIKELY(!m_.try_lock())) lock_contended();
    if (SYDRA_UNLIKELY((++acquisitions_ & (period_ - 1)) == 0)) hold_start_ = Clock::now_ns();
  }
  void unlock() noexcept {
    if (SYDRA_UNLIKELY((acquisitions_ & (period_ - 1)) == 0)) record_hold();
    m_.unlock();
  }
  void lock_quietly() noexcept { m_.lock(); }
  void unlock_quietly() noexcept { m_.unlock(); }

  // Every counter is written only by the lock's holder and read here, so the
  // caller must hold the lock (lock_quietly) or know that no thread uses it.
  // That is what keeps them plain fields: no atomic on the acquire path.
  LockStats stats() const noexcept {
    LockStats s;
    s.acquisitions = acquisitions_;
    s.contended = contended_;
    s.wait_ns = wait_ns_;
    s.max_wait_ns = max_wait_ns_;
    s.hold_samples = hold_samples_;
    s.hold_ns = hold_ns_ * period_;
    s.threshold_ns = threshold_ns_;
    return s;
  }

 private:
  // The wait is measured by the thread that waited, after it got the lock,
  // so it too is written by the holder.
  SYDRA_SLOW_PATH void lock_contended() noexcept {
    const std::uint64_t start = Clock::now_ns();
    m_.lock();
    const std::uint64_t waited = Clock::now_ns() - start;
    wait_ns_ += waited;
    if (waited > max_wait_ns_) max_wait_ns_ = waited;
    if (waited > threshold_ns_) ++contended_;
  }
  SYDRA_SLOW_PATH void record_hold() noexcept {
    hold_ns_ += Clock::now_ns() - hold_start_;
    ++hold_samples_;
  }

  Mutex m_;
  std::uint64_t acquisitions_ = 0;
  std::uint64_t hold_start_ = 0;
  std::uint64_t threshold_ns_ = TimedLockConfig{}.threshold_ns;
  std::uint32_t period_ = TimedLockConfig{}.hold_sample_period;
  std::uint64_t contended_ = 0, wait_ns_ = 0, max_wait_ns_ = 0, hold_ns_ = 0, hold_samples_ = 0;
};

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
