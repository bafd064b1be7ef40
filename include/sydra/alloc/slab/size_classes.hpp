// Size classes, computed at compile time (never by a program run during the
// build) and checked by static_assert. The seed hand-wrote its bucket table
// and generated the shard table; here both are the same generated table, so a
// block's class never depends on which path served it.
#pragma once

#include <sydra/alloc/request.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace v1 {

inline constexpr std::size_t slab_bytes = 64 * 1024;  // seed: slab_bytes
inline constexpr std::size_t pool_alignment = 8;      // seed: default_alignment (@sizeOf(usize))

// The spec: classes from min_class to max_class, steps_per_doubling classes
// per power of two. {16, 2, 256} gives the seed's bucket_sizes exactly.
struct SizeClassSpec {
  std::size_t min_class = 16;
  std::size_t steps_per_doubling = 2;
  std::size_t max_class = 256;
};

template <SizeClassSpec Spec>
consteval std::size_t count_classes() {
  std::size_t n = 0;
  for (std::size_t base = Spec.min_class; base < Spec.max_class; base *= 2) n += Spec.steps_per_doubling;
  return n + 1;
}

template <SizeClassSpec Spec>
consteval auto make_classes() {
  std::array<std::uint32_t, count_classes<Spec>()> out{};
  std::size_t i = 0;
  for (std::size_t base = Spec.min_class; base < Spec.max_class; base *= 2)
    for (std::size_t s = 0; s < Spec.steps_per_doubling; ++s)
      out[i++] = static_cast<std::uint32_t>(base + s * (base / Spec.steps_per_doubling));
  out[i] = static_cast<std::uint32_t>(Spec.max_class);
  return out;
}

inline constexpr SizeClassSpec default_spec{};
inline constexpr auto size_classes = make_classes<default_spec>();  // seed: bucket_sizes
inline constexpr std::size_t class_count = size_classes.size();
inline constexpr std::size_t max_pooled_size = size_classes.back();  // seed: max_shard_size

// The seed's table, spelled out, so the generator is checked against it.
inline constexpr std::array<std::uint32_t, 9> seed_bucket_sizes{16, 24, 32, 48, 64, 96, 128, 192, 256};
static_assert(size_classes == seed_bucket_sizes, "the generated classes must be the seed's bucket_sizes");

// Size -> class without a loop: one table entry per 8-byte step.
inline constexpr auto class_lut = [] {
  std::array<std::uint8_t, max_pooled_size / pool_alignment + 1> lut{};
  std::size_t cls = 0;
  for (std::size_t step = 0; step < lut.size(); ++step) {
    while (size_classes[cls] < step * pool_alignment) ++cls;
    lut[step] = static_cast<std::uint8_t>(cls);
  }
  return lut;
}();

// Precondition: 1 <= len <= max_pooled_size.
SYDRA_FAST_PATH constexpr unsigned size_class_of(std::size_t len) noexcept {
  return class_lut[(len + pool_alignment - 1) / pool_alignment];
}

// Fallback size histogram (seed: fallback_bucket_bounds) plus one overflow bin.
inline constexpr std::array<std::size_t, 8> fallback_bounds{64, 128, 256, 512, 1024, 2048, 4096, 8192};
inline constexpr std::size_t fallback_bins = fallback_bounds.size() + 1;

// Bin of a fallback request: the first bound >= len, or the overflow bin.
// The bounds are consecutive powers of two, so bit_width finds it.
constexpr std::size_t fallback_bin_of(std::size_t len) noexcept {
  if (len <= fallback_bounds.front()) return 0;
  const std::size_t bin = std::bit_width(len - 1) - std::bit_width(fallback_bounds.front() - 1);
  return bin < fallback_bounds.size() ? bin : fallback_bounds.size();
}

namespace detail {
consteval bool classes_ok() {
  for (std::size_t i = 0; i < class_count; ++i) {
    if (size_classes[i] % pool_alignment != 0) return false;           // every block 8-aligned
    if (i > 0 && size_classes[i] <= size_classes[i - 1]) return false;  // strictly sorted
    if (size_classes[i] < 16) return false;  // a freed block holds a link and an epoch stamp
  }
  return true;
}
consteval bool lut_ok() {
  for (std::size_t len = 1; len <= max_pooled_size; ++len) {
    const unsigned c = size_class_of(len);
    if (size_classes[c] < len || (c > 0 && size_classes[c - 1] >= len)) return false;
  }
  return true;
}
consteval bool bounds_ok() {
  for (std::size_t i = 0; i < fallback_bounds.size(); ++i)
    if (!std::has_single_bit(fallback_bounds[i]) || (i > 0 && fallback_bounds[i] != 2 * fallback_bounds[i - 1]))
      return false;
  // Each bin's edges: its bound lands in it, one byte more lands in the next.
  if (fallback_bin_of(1) != 0) return false;
  for (std::size_t i = 0; i < fallback_bounds.size(); ++i) {
    if (fallback_bin_of(fallback_bounds[i]) != i || fallback_bin_of(fallback_bounds[i] + 1) != i + 1) return false;
    if (fallback_bin_of(fallback_bounds[i] - 1) != (i == 0 || fallback_bounds[i] - 1 > fallback_bounds[i - 1] ? i : i - 1))
      return false;
  }
  return fallback_bin_of(max_request) == fallback_bounds.size();
}
}  // namespace detail
static_assert(detail::classes_ok(), "size classes must be sorted, 8-aligned and at least 16 bytes");
static_assert(detail::lut_ok(), "size_class_of must give the smallest class that fits");
static_assert(detail::bounds_ok(), "fallback bounds must be consecutive powers of two");
static_assert(class_count <= 255, "a class index must fit the slab header's byte");

}  // namespace v1
}  // namespace sydra::alloc
