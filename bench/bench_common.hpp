// Small pieces shared by bench-alloc (Google Benchmark) and bench-memory
// (plain main): a seeded generator, size ranges and an optimisation barrier.
// Nothing here allocates or knows any allocator.
#pragma once

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

// Inclusive byte range of a shape's request sizes.
struct SizeRange {
  std::size_t lo;
  std::size_t hi;
};

// Keeps the compiler from dropping or forwarding stores through p, without
// pulling Google Benchmark into code that bench-memory shares.
inline void escape(void* p) noexcept { asm volatile("" : : "r"(p) : "memory"); }

}  // namespace sydra_bench
