// CountAndPops: a stack's count and its counted pops, packed in one 64-bit
// word (low 16 bits: blocks held; high 48 bits: pops, that is allocations).
//
// One word, so that a single plain store commits both: a stack with one
// writer at a time (a shard's owner, an rseq sequence, a lock holder) needs no
// atomic read-modify-write, and a snapshot reads the two together, never torn.
// A counted pop is one add: count - 1 and pops + 1 at once.
#pragma once

#include <sydra/alloc/platform.hpp>

#include <atomic>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {
namespace detail {

class CountAndPops {
 public:
  static constexpr unsigned count_bits = 16;
  static constexpr std::uint64_t count_mask = (std::uint64_t{1} << count_bits) - 1;
  static constexpr std::uint32_t max_count = static_cast<std::uint32_t>(count_mask);
  // What a counted pop adds: one pop up, and (borrowing from it) one block
  // down. The count must not be zero.
  static constexpr std::uint64_t pop_delta = (std::uint64_t{1} << count_bits) - 1;

  constexpr CountAndPops() noexcept = default;
  constexpr explicit CountAndPops(std::uint64_t bits) noexcept : bits_(bits) {}

  constexpr std::uint64_t bits() const noexcept { return bits_; }
  constexpr std::uint32_t count() const noexcept { return static_cast<std::uint32_t>(bits_ & count_mask); }
  constexpr std::uint64_t pops() const noexcept { return bits_ >> count_bits; }

  // An allocation: one block out, counted.
  constexpr CountAndPops after_pop() const noexcept { return CountAndPops(bits_ + pop_delta); }
  // Blocks in (a free, a refill: pushes are counted elsewhere, if at all).
  constexpr CountAndPops after_push(std::uint32_t n = 1) const noexcept { return CountAndPops(bits_ + n); }
  // Blocks out without counting them (a spill, a flush, a drain).
  constexpr CountAndPops after_take(std::uint32_t n = 1) const noexcept { return CountAndPops(bits_ - n); }

 private:
  std::uint64_t bits_ = 0;
};

// The word where it lives. Its layout is one std::atomic<std::uint64_t>: the
// rseq sequences (pal/percpu.hpp) read and write it as a plain quadword.
struct CountAndPopsWord {
  std::atomic<std::uint64_t> bits{0};

  CountAndPops load(std::memory_order order) const noexcept { return CountAndPops(bits.load(order)); }
  void store(CountAndPops v, std::memory_order order) noexcept { bits.store(v.bits(), order); }
};
static_assert(sizeof(CountAndPopsWord) == sizeof(std::uint64_t));
static_assert(CountAndPops(5).after_pop().count() == 4 && CountAndPops(5).after_pop().pops() == 1);

}  // namespace detail
}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
