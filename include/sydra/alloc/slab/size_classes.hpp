// Size classes: a policy's table, computed and checked at compile time (never
// by a program run during the build).
//
// A policy names its table in one of two ways, or takes the seed's:
//
//   static constexpr sydra::alloc::SizeClassSpec classes{.min = 16, .steps_per_doubling = 4, .max = 4096};
//   using Classes = sydra::alloc::SizeClassList<16, 32, 64, 128>;
//
// The seed's table, {16, 24, 32, 48, 64, 96, 128, 192, 256}, is
// SizeClassSpec{.min = 16, .steps_per_doubling = 2, .max = 256}: `seed_spec`,
// the table of a policy that names none. `wide_spec`, 16 B to 64 KiB in four
// steps per doubling (47 classes), is the table of the configured small_pool
// policy and so of libsydra-malloc.so.
//
// Rules, each checked by its own static_assert:
//   - classes strictly increase;
//   - every class is a multiple of 8 (the pool alignment) and at least 16
//     bytes (a freed block holds a link and an epoch stamp);
//   - a slab (64 KiB) holds at least one block of every class, so the largest
//     class is 64 KiB. Above 8 KiB a slab holds fewer than 8 blocks; a class
//     of more than 32 KiB holds one, and the slab's tail past it is never
//     touched, so a fresh slab commits only the block's pages;
//   - worst-case internal waste under 50%: each class is less than twice its
//     predecessor plus one, so a request never gets a block more than about
//     twice its size (the first class excepted: a 1-byte request gets it);
//   - at most 255 classes (a class index is one byte in the slab metadata).
//
// Alignment: slabs are 64 KiB-aligned and blocks carry no header, so block i
// of a class of size s sits at i * s. A class serves alignment 16 only if s
// is a multiple of 16; a 16-aligned request of a size whose class is not (24
// in the seed's table) takes the next class that is (32).
#pragma once

#include <sydra/alloc/request.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace sydra::alloc {
inline namespace SYDRA_ALLOC_ABI {

inline constexpr std::size_t slab_bytes = 64 * 1024;  // seed: slab_bytes
inline constexpr std::size_t pool_alignment = 8;      // every class is a multiple of this
inline constexpr std::size_t max_pooled_alignment = 16;  // alignof(std::max_align_t): malloc's alignment
inline constexpr std::size_t max_class_size = slab_bytes;  // one block per slab

// Classes from min to max, steps_per_doubling per power of two, each rounded
// up to a multiple of the pool alignment.
struct SizeClassSpec {
  std::size_t min = 16;
  std::size_t steps_per_doubling = 2;
  std::size_t max = 256;
};

// An explicit table.
template <std::uint32_t... Sizes>
struct SizeClassList {
  static constexpr std::array<std::uint32_t, sizeof...(Sizes)> sizes() { return {Sizes...}; }
};

namespace detail {
// Walks the spec's classes, each rounded up to the pool alignment, skipping
// any that rounding made equal to the one before ({16, 4, ...} gives 16, 24,
// 32, 40, 48, ...). Calls f(size) for each; returns how many.
template <SizeClassSpec Spec, class F>
constexpr std::size_t walk_spec(F f) {
  std::size_t n = 0, last = 0;
  auto emit = [&](std::size_t s) {
    s = (s + pool_alignment - 1) / pool_alignment * pool_alignment;
    if (s <= last) return;
    last = s;
    f(n++, s);
  };
  for (std::size_t base = Spec.min; base < Spec.max; base *= 2)
    for (std::size_t k = 0; k < Spec.steps_per_doubling; ++k) emit(base + k * base / Spec.steps_per_doubling);
  emit(Spec.max);
  return n;
}
template <SizeClassSpec Spec>
consteval std::size_t count_from_spec() {
  return walk_spec<Spec>([](std::size_t, std::size_t) {});
}
}  // namespace detail

template <SizeClassSpec Spec>
struct SizeClassesFrom {
  static_assert(Spec.min >= 1 && Spec.steps_per_doubling >= 1 && Spec.max >= Spec.min,
                "SizeClassSpec: need min >= 1, steps_per_doubling >= 1 and max >= min");
  static constexpr auto sizes() {
    std::array<std::uint32_t, detail::count_from_spec<Spec>()> out{};
    detail::walk_spec<Spec>([&out](std::size_t i, std::size_t s) { out[i] = static_cast<std::uint32_t>(s); });
    return out;
  }
};

inline constexpr SizeClassSpec seed_spec{};
inline constexpr SizeClassSpec wide_spec{.min = 16, .steps_per_doubling = 4, .max = 64 * 1024};
inline constexpr std::array<std::uint32_t, 9> seed_bucket_sizes{16, 24, 32, 48, 64, 96, 128, 192, 256};
static_assert(SizeClassesFrom<seed_spec>::sizes() == seed_bucket_sizes,
              "the default spec must generate the seed's bucket_sizes");

namespace detail {
template <auto Sizes>
consteval bool strictly_increasing() {
  for (std::size_t i = 1; i < Sizes.size(); ++i)
    if (Sizes[i] <= Sizes[i - 1]) return false;
  return true;
}
template <auto Sizes>
consteval bool multiples_of_pool_alignment() {
  for (auto s : Sizes)
    if (s % pool_alignment != 0) return false;
  return true;
}
template <auto Sizes>
consteval bool waste_bounded() {
  for (std::size_t i = 1; i < Sizes.size(); ++i)
    if (Sizes[i] > 2 * Sizes[i - 1] + 1) return false;
  return true;
}
}  // namespace detail

// The table a handle and its pools use. Source is SizeClassesFrom<spec> or a
// SizeClassList.
template <class Source>
struct SizeClassTable {
  static constexpr auto sizes = Source::sizes();
  static constexpr std::size_t count = sizes.size();
  static constexpr std::size_t max_size = sizes.back();

  static_assert(count >= 1 && count <= 255, "size classes: between 1 and 255 classes (a class index is one byte)");
  static_assert(detail::strictly_increasing<sizes>(), "size classes: each class must be larger than the one before");
  static_assert(detail::multiples_of_pool_alignment<sizes>(),
                "size classes: every class must be a multiple of the pool alignment (8 bytes)");
  static_assert(sizes.front() >= 16, "size classes: the smallest class must be at least 16 bytes (a link and an epoch)");
  static_assert(max_size <= max_class_size,
                "size classes: the largest class must fit a 64 KiB slab (at most 65536 bytes)");
  static_assert(!detail::strictly_increasing<sizes>() || detail::waste_bounded<sizes>(),
                "size classes: worst-case internal waste must stay under 50% (each class < 2 x its predecessor + 1)");

  // len -> class for alignment <= 8: one entry per 8-byte step.
  static constexpr auto lut = [] {
    std::array<std::uint8_t, max_size / pool_alignment + 1> t{};
    std::size_t cls = 0;
    for (std::size_t step = 0; step < t.size(); ++step) {
      while (sizes[cls] < step * pool_alignment) ++cls;
      t[step] = static_cast<std::uint8_t>(cls);
    }
    return t;
  }();
  // class -> the first class at or above it that serves alignment 16, or
  // `count` when none does (the request then goes to the fallback).
  static constexpr auto up16 = [] {
    std::array<std::uint8_t, count> t{};
    for (std::size_t c = 0; c < count; ++c) {
      std::size_t d = c;
      while (d < count && sizes[d] % 16 != 0) ++d;
      t[c] = static_cast<std::uint8_t>(d);
    }
    return t;
  }();
  // Every pooled size at alignment 16 has a class (the largest class is a
  // multiple of 16), so class_of(len, 16) never answers `count`.
  static constexpr bool serves_16_everywhere = sizes.back() % 16 == 0;
  // Precondition: 1 <= len <= max_size.
  SYDRA_FAST_PATH static constexpr unsigned class_of(std::size_t len) noexcept {
    return lut[(len + pool_alignment - 1) / pool_alignment];
  }
  // Precondition: 1 <= len <= max_size, align a power of two <= 16. May
  // return `count` (no class serves the alignment).
  SYDRA_FAST_PATH static constexpr unsigned class_of(std::size_t len, std::size_t align) noexcept {
    const unsigned c = class_of(len);
    return align <= pool_alignment ? c : up16[c];
  }
  static constexpr std::uint32_t blocks_per_slab(unsigned cls) noexcept {
    return static_cast<std::uint32_t>(slab_bytes / sizes[cls]);
  }
};

using SeedClasses = SizeClassTable<SizeClassesFrom<seed_spec>>;
using WideClasses = SizeClassTable<SizeClassesFrom<wide_spec>>;
static_assert(WideClasses::count == 47 && WideClasses::max_size == 64 * 1024);

namespace detail {
// Every rule SizeClassTable asserts, as one answer, without asserting.
template <class Source>
consteval bool table_ok() {
  constexpr auto sizes = Source::sizes();
  if constexpr (sizes.size() < 1 || sizes.size() > 255) {
    return false;
  } else {
    return strictly_increasing<sizes>() && multiples_of_pool_alignment<sizes>() && sizes.front() >= 16 &&
           sizes.back() <= max_class_size && waste_bounded<sizes>();
  }
}
template <class Policy>
consteval auto pick_source() {
  if constexpr (requires { Policy::Classes::sizes(); })
    return static_cast<typename Policy::Classes*>(nullptr);
  else if constexpr (requires { SizeClassSpec{Policy::classes}; })
    return static_cast<SizeClassesFrom<SizeClassSpec{Policy::classes}>*>(nullptr);
  else
    return static_cast<SizeClassesFrom<seed_spec>*>(nullptr);
}
template <class Policy>
using PolicySource = std::remove_pointer_t<decltype(pick_source<Policy>())>;
}  // namespace detail

// The table a policy names: Policy::Classes (a SizeClassList or any type with
// sizes()), else Policy::classes (a SizeClassSpec), else the seed's. A table
// that breaks a rule fails with that rule's static_assert (TableRules below)
// and the handle compiles on with the seed's table, so there is one error.
template <class Policy>
using PolicyClasses = std::conditional_t<detail::table_ok<detail::PolicySource<Policy>>(),
                                         SizeClassTable<detail::PolicySource<Policy>>, SeedClasses>;

namespace detail {
// Instantiating the table is what fires its rules' static_asserts.
template <class Policy>
struct TableRules {
  static_assert(sizeof(SizeClassTable<PolicySource<Policy>>) != 0);  // instantiates the table: its rules fire here
};
}  // namespace detail

// How many free blocks of a class a cache in front of the slabs may hold:
// `bytes / size` within [min_blocks, max_blocks], except that for a large
// class min_blocks gives way to `max_bytes` (never below 2 blocks), so that a
// cache of 64 KiB blocks does not hold a megabyte per class.
constexpr std::size_t cache_blocks(std::size_t size, std::size_t bytes, std::size_t min_blocks, std::size_t max_blocks,
                                   std::size_t max_bytes) noexcept {
  std::size_t cap = bytes / size;
  if (cap < min_blocks) cap = min_blocks;
  if (cap > max_blocks) cap = max_blocks;
  const std::size_t by_bytes = max_bytes / size;
  if (cap > by_bytes) cap = by_bytes;
  return cap < 2 ? 2 : cap;
}
static_assert(cache_blocks(16, 8192, 16, 64, 128 * 1024) == 64 && cache_blocks(256, 8192, 16, 64, 128 * 1024) == 32 &&
              cache_blocks(8192, 8192, 16, 64, 128 * 1024) == 16 && cache_blocks(65536, 8192, 16, 64, 128 * 1024) == 2);

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
// class_of() sees a length only through its 8-byte step, so the first and
// the last length of every step stand for all of them: 16 Ki checks for a
// 64 KiB table, where one per length would pass clang's constexpr step limit.
template <class Table>
consteval bool len_ok(std::size_t len) {
  const unsigned c = Table::class_of(len);
  if (Table::sizes[c] < len || (c > 0 && Table::sizes[c - 1] >= len)) return false;
  const unsigned c16 = Table::class_of(len, 16);
  return c16 >= Table::count || (Table::sizes[c16] % 16 == 0 && Table::sizes[c16] >= len);
}
template <class Table>
consteval bool lut_ok() {
  for (std::size_t step = 1; step <= Table::max_size / pool_alignment; ++step)
    if (!len_ok<Table>(step * pool_alignment - pool_alignment + 1) || !len_ok<Table>(step * pool_alignment)) return false;
  return true;
}
consteval bool bounds_ok() {
  for (std::size_t i = 0; i < fallback_bounds.size(); ++i)
    if (!std::has_single_bit(fallback_bounds[i]) || (i > 0 && fallback_bounds[i] != 2 * fallback_bounds[i - 1]))
      return false;
  if (fallback_bin_of(1) != 0) return false;
  for (std::size_t i = 0; i < fallback_bounds.size(); ++i) {
    if (fallback_bin_of(fallback_bounds[i]) != i || fallback_bin_of(fallback_bounds[i] + 1) != i + 1) return false;
  }
  return fallback_bin_of(max_request) == fallback_bounds.size();
}
}  // namespace detail
static_assert(detail::lut_ok<SeedClasses>(), "class_of must give the smallest class that fits (and serves 16)");
static_assert(detail::lut_ok<WideClasses>(), "class_of must give the smallest class that fits (and serves 16)");
static_assert(detail::bounds_ok(), "fallback bounds must be consecutive powers of two");

}  // namespace SYDRA_ALLOC_ABI
}  // namespace sydra::alloc
