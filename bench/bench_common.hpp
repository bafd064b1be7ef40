// Small pieces shared by bench-alloc (Google Benchmark) and bench-memory
// (plain main): a seeded generator, size ranges and an optimisation barrier.
// Nothing here allocates or knows any allocator.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace sydra_bench {

// xorshift64: the churn draws two numbers per operation, so the generator
// must cost next to nothing next to an alloc+free pair (std::mt19937_64
// would not), and it must be seeded so that every allocator sees the same
// sequence of sizes and slots.
class Xorshift64 {
  __extension__ using U128 = unsigned __int128;  // GCC and Clang; __extension__ keeps -Wpedantic quiet

 public:
  explicit Xorshift64(std::uint64_t seed) noexcept : s_((seed + 1) * 0x9E3779B97F4A7C15ull) {
    if (s_ == 0) s_ = 0x2545F4914F6CDD1Dull;  // zero is the one state xorshift never leaves
  }
  std::uint64_t next() noexcept {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  // Uniform in [0, n) by multiply-high: no division on the hot path.
  std::size_t below(std::size_t n) noexcept {
    return static_cast<std::size_t>((static_cast<U128>(next()) * n) >> 64);
  }

 private:
  std::uint64_t s_;
};

// Inclusive byte range of a shape's request sizes. Uniform over the bytes
// by default; log_uniform makes every octave equally likely, so that over a
// wide range (16 B..32 KiB) the small sizes, which programs ask for most,
// are not drowned by the large ones (uniform over 16..32768 would draw a
// size under 256 B once in 137 operations).
struct SizeRange {
  std::size_t lo;
  std::size_t hi;
  bool log_uniform = false;
};

// The size at quantile q in [0, 1) of the log-uniform distribution over
// [lo, hi]: lo * (hi / lo)^q, kept inside the range against rounding.
inline std::size_t log_uniform_quantile(std::size_t lo, std::size_t hi, double q) noexcept {
  const double v = static_cast<double>(lo) * std::exp(q * std::log(static_cast<double>(hi) / static_cast<double>(lo)));
  const auto n = static_cast<std::size_t>(std::llround(v));
  return n < lo ? lo : (n > hi ? hi : n);
}

// A log-uniform draw over [lo, hi], for harness code where std::exp's cost
// does not matter (bench-memory); the churn uses a table instead.
inline std::size_t log_uniform_size(Xorshift64& rng, std::size_t lo, std::size_t hi) noexcept {
  return log_uniform_quantile(lo, hi, static_cast<double>(rng.next() >> 11) * 0x1p-53);
}

// Keeps the compiler from dropping or forwarding stores through p, without
// pulling Google Benchmark into code that bench-memory shares.
inline void escape(void* p) noexcept { asm volatile("" : : "r"(p) : "memory"); }

}  // namespace sydra_bench
