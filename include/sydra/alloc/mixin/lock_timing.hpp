// Bucket locks. The mutex is a three-state futex lock (free, locked, locked
// with waiters): one compare-exchange to take it and one exchange to give it
// back when uncontended, about half a std::mutex round trip, because the
// bucket path pays one round trip per block.
//
// PlainLock is the mutex alone: no counters, nothing to read.
// TimedLock adds the seed's lock statistics without putting a clock on the
// uncontended path: the wait is timed only after try_lock fails, and the hold
// is timed on one acquisition in `hold_sample_period` (1 in 64 by default),
// its total estimated from the samples.
#pragma once

#include <sydra/alloc/mixin/stats.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace sydra::alloc {
inline namespace v1 {

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

struct SteadyClock {
  static std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }
};

struct TimedLockConfig {
  std::uint64_t threshold_ns = 1000;     // seed: lock_wait_threshold_ns
  std::uint32_t hold_sample_period = 64;  // 1 = time every hold
};

template <class Mutex = FutexMutex>
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

template <class Mutex = FutexMutex, class Clock = SteadyClock>
class TimedLock {
 public:
  static constexpr bool timed = true;
  TimedLock() = default;
  // Before first use only.
  void configure(const TimedLockConfig& c) noexcept {
    threshold_ns_ = c.threshold_ns;
    period_ = c.hold_sample_period == 0 ? 1 : c.hold_sample_period;
    countdown_ = period_;
  }

  void lock() noexcept {
    if (SYDRA_UNLIKELY(!m_.try_lock())) lock_contended();
    // Counters below are written only by the holder, so plain load+store suffices.
    acquisitions_.store(acquisitions_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (SYDRA_UNLIKELY(--countdown_ == 0)) {
      countdown_ = period_;
      sampling_ = true;
      hold_start_ = Clock::now_ns();
    }
  }
  void unlock() noexcept {
    if (SYDRA_UNLIKELY(sampling_)) record_hold();
    m_.unlock();
  }
  void lock_quietly() noexcept { m_.lock(); }
  void unlock_quietly() noexcept { m_.unlock(); }

  // Call while holding the lock (lock_quietly) for a consistent view.
  LockStats stats() const noexcept {
    LockStats s;
    s.acquisitions = acquisitions_.load(std::memory_order_relaxed);
    s.contended = contended_.load(std::memory_order_relaxed);
    s.wait_ns = wait_ns_.load(std::memory_order_relaxed);
    s.max_wait_ns = max_wait_ns_.load(std::memory_order_relaxed);
    s.hold_samples = hold_samples_.load(std::memory_order_relaxed);
    s.hold_ns = hold_ns_.load(std::memory_order_relaxed) * period_;
    s.threshold_ns = threshold_ns_;
    return s;
  }

 private:
  SYDRA_SLOW_PATH void lock_contended() noexcept {
    const std::uint64_t start = Clock::now_ns();
    m_.lock();
    const std::uint64_t waited = Clock::now_ns() - start;
    wait_ns_.store(wait_ns_.load(std::memory_order_relaxed) + waited, std::memory_order_relaxed);
    if (waited > max_wait_ns_.load(std::memory_order_relaxed)) max_wait_ns_.store(waited, std::memory_order_relaxed);
    if (waited > threshold_ns_) contended_.store(contended_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  SYDRA_SLOW_PATH void record_hold() noexcept {
    const std::uint64_t held = Clock::now_ns() - hold_start_;
    hold_ns_.store(hold_ns_.load(std::memory_order_relaxed) + held, std::memory_order_relaxed);
    hold_samples_.store(hold_samples_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sampling_ = false;
  }

  Mutex m_;
  std::uint64_t threshold_ns_ = TimedLockConfig{}.threshold_ns;
  std::uint32_t period_ = TimedLockConfig{}.hold_sample_period;
  std::uint64_t hold_start_ = 0;
  std::uint32_t countdown_ = TimedLockConfig{}.hold_sample_period;
  bool sampling_ = false;
  std::atomic<std::uint64_t> acquisitions_{0}, contended_{0}, wait_ns_{0}, max_wait_ns_{0}, hold_ns_{0},
      hold_samples_{0};
};

}  // namespace v1
}  // namespace sydra::alloc
