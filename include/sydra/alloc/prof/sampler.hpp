// The sampling clock of the heap profiler: which allocations are sampled, and
// what each sample stands for.
//
// tcmalloc's scheme. Each thread counts down the bytes it allocates; when the
// count goes below zero, the allocation that crossed it is sampled and a new
// count is drawn from an exponential distribution with mean T (the
// profiler's mean interval). The intervals are memoryless, so each byte is a
// trigger with probability 1/T independently of the others, and an
// allocation of s bytes is sampled with probability p(s) = 1 - exp(-s/T),
// whatever came before it. A sample then stands for 1/p(s) allocations of
// s/p(s) bytes: summed over the samples, that estimate is unbiased, and its
// standard error over B bytes is about sqrt(T * B) (docs/profiling.md).
//
// The clock is one thread_local per thread, plain data (nothing to free at
// thread exit). The fast path is its one subtract and one branch (due()).
#pragma once

#include <sydra/alloc/pal/os_memory.hpp>
#include <sydra/alloc/platform.hpp>

#include <cmath>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace prof {

inline constexpr std::size_t default_mean_bytes = std::size_t{512} << 10;  // jemalloc's lg_prof_sample = 19

struct SampleClock {
  std::int64_t countdown;  // bytes until the next sample; below zero: the slow path
  std::uint64_t rng;       // xorshift64* state; 0 until the thread's first draw
};

// Initial-exec TLS: read on every allocation of a profiled handle, and a
// malloc built on one is loaded at start-up (see lib/malloc/meson.build).
[[gnu::tls_model("initial-exec")]] inline constinit thread_local SampleClock sample_clock{};

// The fast path: counts the request down and says whether the slow path runs.
SYDRA_FAST_PATH bool due(std::size_t len) noexcept {
  // Unsigned arithmetic: a request too large to serve wraps instead of overflowing.
  const auto left = static_cast<std::uint64_t>(sample_clock.countdown) - static_cast<std::uint64_t>(len);
  sample_clock.countdown = static_cast<std::int64_t>(left);
  return sample_clock.countdown < 0;
}

// Gives len bytes back to the clock (a request the slow path handed back to
// the fast path, which counts it again).
inline void give_back(std::size_t len) noexcept {
  sample_clock.countdown =
      static_cast<std::int64_t>(static_cast<std::uint64_t>(sample_clock.countdown) + static_cast<std::uint64_t>(len));
}

// A uniform double in (0, 1] from the thread's generator.
inline double uniform(SampleClock& c) noexcept {
  c.rng ^= c.rng >> 12;
  c.rng ^= c.rng << 25;
  c.rng ^= c.rng >> 27;
  const std::uint64_t bits = (c.rng * 0x2545F4914F6CDD1Dull) >> 11;
  return (static_cast<double>(bits) + 1.0) * (1.0 / 9007199254740992.0);
}

// The next interval, at least one byte: exponential with the given mean.
inline std::int64_t next_interval(SampleClock& c, std::size_t mean) noexcept {
  const double x = -std::log(uniform(c)) * static_cast<double>(mean);
  return x >= 9.0e18 ? std::int64_t{9'000'000'000'000'000'000} : static_cast<std::int64_t>(x) + 1;
}

// How many allocations of len bytes one sample of len bytes stands for: 1/p(len).
inline double inverse_probability(std::size_t len, std::size_t mean) noexcept {
  const double p = -std::expm1(-static_cast<double>(len) / static_cast<double>(mean));
  return p > 0 ? 1.0 / p : 1.0;
}

// What the slow path decided: sample this allocation or not.
struct Decision {
  bool sample = false;
  double weight = 0;  // 1/p(len) when sampled
};

// The slow path, once due() said the count went below zero. A thread's first
// countdown starts at zero, so its first allocation comes here: it seeds
// the generator and draws the first interval, and the allocation is sampled
// only if that interval also ends inside it (the same probability as any
// other). Afterwards the count restarts from a fresh draw, whatever the
// overshoot was (memoryless: the next allocation's chance is p(s) again).
inline Decision decide(std::size_t len, std::size_t mean) noexcept {
  SampleClock& c = sample_clock;
  if (SYDRA_UNLIKELY(c.rng == 0)) {  // threads apart by their clock's address, processes by the secret
    c.rng = (pal::process_secret() ^ reinterpret_cast<std::uintptr_t>(&c) * 0x9E3779B97F4A7C15ull) | 1;
    c.countdown = next_interval(c, mean) - static_cast<std::int64_t>(len);
    if (c.countdown >= 0) return {};
  }
  c.countdown = next_interval(c, mean);
  return {true, inverse_probability(len, mean)};
}

// For tests: the calling thread's generator restarts from seed with a fresh
// count, so the same allocations on this thread draw the same samples.
inline void reseed_this_thread(std::uint64_t seed, std::size_t mean) noexcept {
  sample_clock.rng = seed | 1;
  sample_clock.countdown = next_interval(sample_clock, mean);
}

}  // namespace prof
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
