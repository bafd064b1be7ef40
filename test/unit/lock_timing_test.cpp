// TimedLock: what it counts, deterministically (an injected clock), and that
// an uncontended acquire reads no clock.
#include <sydra/alloc.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace sa = sydra::alloc;

namespace {

struct FakeClock {
  static inline std::atomic<std::uint64_t> now{1000};
  static inline std::atomic<std::uint64_t> reads{0};
  // The time is read before the read is counted: a test that waits for the
  // count and then moves the clock must not move it under this read.
  static std::uint64_t now_ns() noexcept {
    const std::uint64_t t = now.load();
    reads.fetch_add(1);
    return t;
  }
  static void reset() {
    now = 1000;
    reads = 0;
  }
};

using FakeTimedLock = sa::TimedLock<sa::FutexMutex, FakeClock>;

TEST(TimedLock, UncontendedAcquireReadsNoClock) {
  FakeClock::reset();
  FakeTimedLock lock;
  lock.configure({.threshold_ns = 1000, .hold_sample_period = 1u << 30});
  for (int i = 0; i < 1000; ++i) {
    lock.lock();
    lock.unlock();
  }
  EXPECT_EQ(FakeClock::reads.load(), 0u);
  const sa::LockStats s = lock.stats();
  EXPECT_EQ(s.acquisitions, 1000u);
  EXPECT_EQ(s.contended, 0u);
  EXPECT_EQ(s.wait_ns, 0u);
}

TEST(TimedLock, SampledHoldsAreTimedAndScaled) {
  FakeClock::reset();
  FakeTimedLock lock;
  lock.configure({.threshold_ns = 1000, .hold_sample_period = 4});
  for (int i = 0; i < 8; ++i) {
    lock.lock();
    FakeClock::now += 10;  // every hold lasts 10 ns
    lock.unlock();
  }
  const sa::LockStats s = lock.stats();
  EXPECT_EQ(FakeClock::reads.load(), 4u);  // 2 sampled holds x (start, end)
  EXPECT_EQ(s.hold_samples, 2u);
  EXPECT_EQ(s.hold_ns, 2u * 10u * 4u);  // sampled total x period
}

// One holder, one waiter that blocks; the fake clock moves `wait_ns` while
// the waiter waits. Returns the lock's stats afterwards.
sa::LockStats wait_once(std::uint64_t threshold_ns, std::uint64_t wait_ns) {
  FakeClock::reset();
  FakeTimedLock lock;
  lock.configure({.threshold_ns = threshold_ns, .hold_sample_period = 1u << 30});
  lock.lock();
  std::thread waiter([&] {
    lock.lock();  // try_lock fails: the wait is timed
    lock.unlock();
  });
  while (FakeClock::reads.load() == 0) std::this_thread::yield();  // the waiter read its start time
  FakeClock::now += wait_ns;
  lock.unlock();
  waiter.join();
  return lock.stats();
}

TEST(TimedLock, AWaitAboveTheThresholdIsContended) {
  const sa::LockStats s = wait_once(1000, 5000);
  EXPECT_EQ(s.acquisitions, 2u);
  EXPECT_EQ(s.contended, 1u);
  EXPECT_EQ(s.wait_ns, 5000u);
  EXPECT_EQ(s.max_wait_ns, 5000u);
  EXPECT_EQ(s.threshold_ns, 1000u);
}

TEST(TimedLock, AWaitBelowTheThresholdIsNotContended) {
  const sa::LockStats s = wait_once(10000, 5000);
  EXPECT_EQ(s.contended, 0u);
  EXPECT_EQ(s.wait_ns, 5000u);
}

TEST(PlainLock, IsJustTheMutex) {
  static_assert(sizeof(sa::PlainLock<>) == sizeof(sa::SpinMutex));
  static_assert(!sa::PlainLock<>::timed);
  sa::PlainLock<> lock;
  lock.lock();
  lock.unlock();
}

// The seed's test: two threads on one bucket make contention visible in the
// snapshot. A holder sleeps inside the lock, so the other thread must wait.
TEST(TimedLock, ContentionShowsUpInBucketStatsUnderTwoThreads) {
  sa::TimedLock<> lock;
  lock.configure({.threshold_ns = 1000, .hold_sample_period = 1});
  std::atomic<bool> held{false};
  std::thread holder([&] {
    lock.lock();
    held = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    lock.unlock();
  });
  while (!held) std::this_thread::yield();
  lock.lock();
  lock.unlock();
  holder.join();
  const sa::LockStats s = lock.stats();
  EXPECT_EQ(s.acquisitions, 2u);
  EXPECT_EQ(s.contended, 1u);
  EXPECT_GE(s.max_wait_ns, 1'000'000u);  // at least 1 ms of the 20 ms sleep
  EXPECT_GE(s.hold_ns, 1'000'000u);
}

TEST(TimedLock, BucketSnapshotShowsContentionFromTwoThreads) {
  using Pool = sa::BasicAllocatorHandle<sa::SeedSmallPoolPolicy>;
  Pool h(Pool::Options{.pool = {.shards = 0, .lock_timing = {.threshold_ns = 0, .hold_sample_period = 1}}});
  // With a zero threshold, any acquisition that had to wait counts. Two
  // threads hammer one bucket until a wait is seen (bounded at 10 s). Each
  // allocates and frees 200 blocks at a time, more than a per-CPU cache
  // holds, so batches keep crossing the bucket lock.
  std::atomic<bool> stop{false};
  auto work = [&] {
    std::vector<void*> held(200);
    while (!stop.load(std::memory_order_relaxed)) {
      for (void*& p : held) p = h.alloc(64, 8);
      for (void* p : held) h.free(p, 64, 8);
    }
  };
  std::thread a(work), b(work);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  sa::Stats s;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    s = h.snapshot_stats();
  } while (s.buckets[4].lock.contended == 0 && std::chrono::steady_clock::now() < deadline);
  stop = true;
  a.join();
  b.join();
  EXPECT_GT(s.buckets[4].lock.contended, 0u);
  EXPECT_GT(s.buckets[4].lock.wait_ns, 0u);
  EXPECT_EQ(h.leaks(), sa::LeakReport{});
}

}  // namespace
